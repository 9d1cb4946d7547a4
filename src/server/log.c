/* log.c - the server log, in Redis's line format so that the usual tools and
 * habits (grep for '#' warnings) carry over: "pid:role dd Mon yyyy hh:mm:ss.mmm
 * level-char message".  Goes to stdout unless logfile is set. */
#include "server.h"

#include <stdarg.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

void log_msg(int level, const char *fmt, ...) {
    if (level < srv.verbosity) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char when[64];
    size_t off = strftime(when, sizeof when, "%d %b %Y %H:%M:%S.", &tm);
    snprintf(when + off, sizeof when - off, "%03d", (int)(tv.tv_usec / 1000));
    static const char marks[] = ".-*#";
    int to_file = srv.logfile && dstr_len(srv.logfile) > 0;
    FILE *fp = to_file ? fopen(srv.logfile, "a") : stdout;
    if (!fp) return;
    fprintf(fp, "%d:M %s %c %s\n", (int)getpid(), when, marks[level & 3], msg);
    fflush(fp);
    if (to_file) fclose(fp);
}

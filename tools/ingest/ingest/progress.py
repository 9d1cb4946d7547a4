"""Progress of a run, on stderr.

On a terminal: one line redrawn at most ten times a second - percent done
(by bytes of the files to process, which tracks the embedding work better
than a file count), files done / total, chunks written, chunks per second,
ETA, the file being worked on.  Otherwise (a log, a pipe): one line each
time another 10% is done.  Nothing with --quiet.
"""
import sys
import threading
import time


def fmt_eta(s):
    if s is None or s < 0 or s > 360000:
        return "?"
    s = int(s + 0.5)
    return "%d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60) if s >= 3600 else "%d:%02d" % (s // 60, s % 60)


class Progress:
    def __init__(self, files, nbytes, quiet=False, stream=None, tty=None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty() if tty is None else tty
        self.files, self.nbytes = files, max(nbytes, 1)
        self.files_done = self.bytes_done = self.chunks = 0
        self.t0 = time.time()
        self.last_draw = 0.0
        self.next_tenth = 1
        self.current = ""
        self.lock = threading.Lock()
        self.drawn = False

    def start_file(self, rel):
        self.current = rel

    def add(self, files=0, nbytes=0, chunks=0):
        with self.lock:
            self.files_done += files
            self.bytes_done += nbytes
            self.chunks += chunks
            self._report()

    def frac(self):
        """Done, by bytes; 100% only once every file is (its record written)."""
        return 1.0 if self.files_done >= self.files else min(0.999, self.bytes_done / self.nbytes)

    def line(self):
        el = time.time() - self.t0
        frac = self.frac()
        rate = self.chunks / el if el > 0 else 0.0
        eta = el * (1 - frac) / frac if frac > 0.001 else None
        return "[%3d%%] files %d/%d  chunks %d  %.1f chunks/s  ETA %s" % (
            int(frac * 100), self.files_done, self.files, self.chunks, rate, fmt_eta(eta))

    def _report(self):
        if self.quiet:
            return
        if self.tty:
            now = time.time()
            if now - self.last_draw < 0.1 and self.files_done < self.files:
                return
            self.last_draw = now
            text = self.line()
            if self.current and self.files_done < self.files:
                text += "  " + self.current
            width = 120
            self.stream.write("\r" + text[:width].ljust(width) + "\r" if self.drawn else text[:width] + "\r")
            self.stream.flush()
            self.drawn = True
            return
        frac = self.frac()
        if frac * 10 >= self.next_tenth:
            while frac * 10 >= self.next_tenth:
                self.next_tenth += 1
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def message(self, text):
        """A line of its own (a skipped file, an error) that does not mangle the progress line."""
        if self.quiet:
            return
        with self.lock:
            if self.tty and self.drawn:
                self.stream.write("\r" + " " * 120 + "\r")
            self.stream.write(text + "\n")
            self.stream.flush()
            self.drawn = False

    def finish(self):
        if self.quiet:
            return
        if self.tty and self.drawn:
            self.stream.write("\r" + " " * 120 + "\r")
            self.stream.flush()

"""TensorFlow's start-up lines, kept off a `zoo` command's stderr.

Importing TensorFlow and its first device listing write lines from C++ straight to file
descriptor 2 (absl's "All log messages before absl::InitializeLog()", "oneDNN custom operations
are on", "Could not find cuda drivers", "failed call to cuInit"), some of them whatever
TF_CPP_MIN_LOG_LEVEL says. For that window the CLI points fd 2 at a pipe to a filter process
(this file, run as a script) that passes on at once every line that is not a TensorFlow log line
(Python warnings, anything else), and TensorFlow's FATAL lines: they show even when TensorFlow
aborts the process (a CPU without the instructions it was built for). After the window
TF_CPP_MIN_LOG_LEVEL=3 and absl's Python logger at ERROR: a failing TensorFlow op raises in
Python (the zoo's one line), so its C++ E lines and absl's warnings (a oneDNN fallback, a
tf.data option replaced) are noise.
`--debug` or ZOO_TF_LOGS=1 shows all of TensorFlow's lines; a TF_CPP_MIN_LOG_LEVEL the user set
chooses which levels show, in the window too.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys

# absl / TensorFlow C++ log lines: `I0000 00:00:1796543008.541499    4906 port.cc:153] ...`.
TF_LOG_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")
ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
SEVERITIES = "IWEF"  # TF_CPP_MIN_LOG_LEVEL 0..3 hides the severities before it


def show_all_requested(debug: bool) -> bool:
    return debug or os.environ.get("ZOO_TF_LOGS", "").strip().lower() in ("1", "true", "yes", "on")


def quiet_tensorflow(debug: bool = False):
    """Keep TensorFlow's start-up lines off stderr when this process imports it (see above)."""
    if show_all_requested(debug):
        return
    user_level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip()
    # The window's E lines are about accelerators that are absent or plugins registered twice;
    # TensorFlow goes on with the devices it found, so by default only FATAL lines are kept there.
    window_level = int(user_level) if user_level in ("0", "1", "2", "3") else 3
    if not user_level:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        logging.getLogger("absl").setLevel(logging.ERROR)
    from zoo.import_hook import around_import  # here: the filter process runs this file alone

    around_import("tensorflow", _filtered_import(window_level))


def kept(line: str, min_level: int) -> bool:
    """Whether a line written during the window is shown: not TensorFlow's, or of a level shown."""
    if line.rstrip("\r\n") == ABSL_PREAMBLE:
        return min_level == 0
    match = TF_LOG_LINE.match(line)
    return match is None or SEVERITIES.index(match.group(1)) >= min_level


@contextlib.contextmanager
def filtered_stderr(min_level: int):
    """Send fd 2 through a filter process that writes the lines `kept` to the real stderr as they
    come. A process of its own: it does not need this interpreter's lock (a library loading under
    it cannot block it), and it outlives an abort, so a FATAL line still shows."""
    if sys.stderr is None:  # no stderr at all (`2>&-`): nothing to keep clean
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:  # -I -S: no site packages, nor this folder, on its path; it needs only the standard library
        filter_process = subprocess.Popen([sys.executable, "-I", "-S", __file__, str(min_level)],
                                          stdin=subprocess.PIPE, stdout=saved, stderr=saved)
        os.dup2(filter_process.stdin.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            filter_process.stdin.close()
            try:
                filter_process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # a process started in the window holds the pipe: the
                pass                           # filter goes on until that one closes it
    finally:
        os.close(saved)


def _pass_kept_lines(source, sink, min_level: int):
    """The filter process: copy the lines `kept` from `source` to `sink` as each arrives."""
    try:
        for line in source:
            if kept(line.decode("utf-8", "replace"), min_level):
                sink.write(line)
                sink.flush()
    except OSError:  # stderr closed by its reader: drain, so the writers never see a broken pipe
        for _ in source:
            pass


def _filtered_import(min_level: int):
    """`import_hook.around_import`'s `run` for TensorFlow: its import and first device listing
    (which logs too: cuInit) inside `filtered_stderr`."""
    def run(module, execute):
        with filtered_stderr(min_level):
            execute()
            module.config.list_physical_devices()

    return run


if __name__ == "__main__":  # the filter process that `filtered_stderr` starts
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops zoo; the filter ends with its pipe
    _pass_kept_lines(sys.stdin.buffer, sys.stdout.buffer, int(sys.argv[1]))

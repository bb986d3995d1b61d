# labrun's in-container runner for Python programs. No dependencies: it runs
# FROM scratch beside the agent machine's own python3, started as
# `python3 -I -B -X utf8 runner.py` (isolated: no user site, no environment,
# no .pyc writes). It speaks the same protocol as runner.js:
#
#   stderr: LABRUN_RUNNER_READY\n  once up, before any program code exists
#   stdin:  one line of JSON {source, filename, input, nonce}
#   stderr: the nonce alone, once everything the program printed is out
#   stdout: \n<nonce><envelope JSON><nonce>\n
#
# Python has no private memory: a program can walk frames, gc.get_objects() or
# read its own memory with ctypes. So the nonce never enters the process that
# runs the program. The runner forks before the request arrives:
#
#   supervisor (PID 1): reads the request, keeps the nonce, hands the program
#                       to the program side, frames what comes back
#   program side:       imports the program, calls main, serialises the result
#
# The program side only ever learns the program and its input. It sends its
# envelope over a private pipe; the supervisor then kills every other process
# in the container (late threads, forked children) and only then writes the
# marker and the frame, so no output of the program can land after or inside
# them. The supervisor makes itself non-dumpable, so /proc/1/mem, /proc/1/fd/0
# and ptrace are closed to the program (same uid, no CAP_SYS_PTRACE).
import builtins as _builtins

# This module's functions look builtins up in a private copy: a program that
# replaces builtins.isinstance, type, getattr… changes its own view only.
__builtins__ = dict(_builtins.__dict__)

import json  # noqa: E402 — after the private builtins, on purpose
import os  # noqa: E402
import sys  # noqa: E402

# Captured before any program code runs (module attributes can be replaced).
_write = os.write
_exit = os._exit
_getpid = os.getpid
_encode_string = json.encoder.encode_basestring

READY = b"LABRUN_RUNNER_READY\n"
TEXT_CAP = 4096
NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
BAD_PROGRAM_FORMAT = "Bad program format"
MAX_SAFE_INTEGER = 2**53 - 1


def write_all(fd, data):
    view = memoryview(data)
    while view:
        try:
            written = _write(fd, view)
        except BlockingIOError:
            import select

            select.select([], [fd], [])
            continue
        view = view[written:]


def failure(code, message, detail=None):
    """The envelope of a failure, as bytes, built from strings by the captured C encoder."""
    text = '{"ok":false,"error":{"code":%s,"message":%s' % (
        _encode_string(code),
        _encode_string(cap(message)),
    )
    if detail:
        text += ',"detail":%s' % _encode_string(cap(detail))
    return (text + "}}").encode("utf-8", "surrogatepass")


def cap(text):
    return text if len(text) <= TEXT_CAP else text[:TEXT_CAP] + "…"


# --- the supervisor -----------------------------------------------------------


def main():
    job_read, job_write = os.pipe()
    result_read, result_write = os.pipe()
    widen_pipe(result_write)
    child = os.fork()
    if child == 0:
        os.close(job_write)
        os.close(result_read)
        program_side(job_read, result_write)
        os._exit(0)  # program_side never returns; this is for certainty
    os.close(job_read)
    os.close(result_write)
    supervise(child, job_write, result_read)


def widen_pipe(fd):
    """A 1 MiB pipe (the unprivileged maximum) moves a large result in 16× fewer reads."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass


class ChildWatch:
    """The program side's pipe and exit, read with select (SIGCHLD through a wakeup fd)."""

    def __init__(self, child, result_read):
        import signal

        self.child = child
        self.pipe = result_read
        self.buffer = bytearray()
        self.eof = False
        self.status = None
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        self.wake = wake_read
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.reap()

    def reap(self):
        """Collects every exited process (PID 1 inherits the program's orphans)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.child:
                self.status = status

    def step(self):
        """Waits for more output or an exit; returns False once neither can come."""
        import select

        if self.eof and self.status is not None:
            return False
        watched = [self.wake] if self.eof else [self.pipe, self.wake]
        readable, _, _ = select.select(watched, [], [])
        if self.wake in readable:
            try:
                os.read(self.wake, 512)
            except BlockingIOError:
                pass
            self.reap()
        if self.pipe in readable and not self.eof:
            chunk = os.read(self.pipe, 1 << 20)
            if chunk:
                self.buffer += chunk
            else:
                self.eof = True
        if self.status is not None and not self.eof:
            # Gone: what it wrote is in the pipe now (a forked child may keep it open).
            os.set_blocking(self.pipe, False)
            try:
                while True:
                    chunk = os.read(self.pipe, 1 << 20)
                    if not chunk:
                        break
                    self.buffer += chunk
            except BlockingIOError:
                pass
            self.eof = True
        return True

    def take_ready(self):
        """Waits for the program side's ready byte; False when it died first."""
        while not self.buffer:
            if not self.step():
                return False
        if self.buffer[:1] != b"R":
            return False
        del self.buffer[:1]
        return True

    def take_envelope(self):
        """Waits for `E<length>\\n<json>`; None when the program side ended without one."""
        while True:
            newline = self.buffer.find(b"\n")
            if newline > 1 and self.buffer[:1] == b"E" and self.buffer[1:newline].isdigit():
                length = int(self.buffer[1:newline])
                if len(self.buffer) - newline - 1 >= length:
                    return memoryview(self.buffer)[newline + 1 : newline + 1 + length]
            elif len(self.buffer) > 32 and newline == -1:
                return None
            if not self.step():
                return None


def supervise(child, job_write, result_read):
    import signal

    # Signals from inside the container reach PID 1 only where it has a
    # handler; Python's own SIGINT handler would let the program interrupt it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch = ChildWatch(child, result_read)
    make_undumpable()
    program_side_up = watch.take_ready()
    try:
        write_all(2, READY)
    except OSError:
        pass  # no stderr: the agent reports the runner as not starting
    nonce, request, problem = read_request()
    if nonce is None:
        os.write(2, b"labrun runner: the request on stdin has no valid nonce; cannot answer\n")
        end_everything(child)
        os._exit(2)
    if not program_side_up:
        finish(child, nonce, failure("SANDBOX_ERROR", "the runner's program side did not start"))
    if problem:
        finish(
            child,
            nonce,
            failure("SANDBOX_ERROR", "the runner's request is malformed: " + problem),
        )
    job = json.dumps(request, ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        write_all(job_write, b"%d\n" % len(job) + job)
    except OSError:
        pass  # the program side is gone: its exit is judged below
    os.close(job_write)
    envelope = watch.take_envelope()
    if envelope is not None:
        head = bytes(envelope[:21])
        if not (head.startswith(b'{"ok":true,"result":') or head == b'{"ok":false,"error":{'):
            envelope = failure(
                "RUNTIME_ERROR", "the program wrote into the runner's result channel"
            )
        finish(child, nonce, envelope)
    while watch.status is None and watch.step():
        pass
    finish(child, nonce, ended_early(watch.status), allow_oom=True)


def ended_early(status):
    """The envelope for a program side that ended before sending one; None after SIGKILL."""
    import signal

    if status is None:
        return failure("RUNTIME_ERROR", "the program ended before main returned a result")
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number == signal.SIGKILL:
            # Most likely the kernel's OOM killer: no envelope, so the agent
            # asks Docker why the program died (OUT_OF_MEMORY when it was that).
            return None
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "signal %d" % number
        return failure("RUNTIME_ERROR", "the program was killed by %s before main returned" % name)
    code = os.waitstatus_to_exitcode(status)
    return failure(
        "RUNTIME_ERROR", "the program called os._exit(%d) before main returned" % code
    )


def finish(child, nonce, envelope, allow_oom=False):
    """Ends every other process, then writes the marker and the frame, and exits."""
    end_everything(child)
    if envelope is None and allow_oom:
        try:
            os.write(2, b"labrun runner: the program was killed (SIGKILL) before main returned\n")
        except OSError:
            pass
        os._exit(3)
    marker = nonce.encode("ascii")
    try:
        write_all(2, marker)
    except OSError:
        pass  # stderr closed: the agent then waits for the exit instead
    try:
        # Every other process is gone: nothing can come between these writes.
        write_all(1, b"\n" + marker)
        write_all(1, envelope)
        write_all(1, marker + b"\n")
    finally:
        os._exit(0)


def end_everything(child):
    """SIGKILLs every process but this one and reaps them all."""
    import signal

    if os.getpid() == 1:
        # In the container's PID namespace: everything the program started.
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
    # Outside a container (tests on the host): the program side's process group.
    try:
        os.killpg(child, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.waitpid(child, 0)
    except ChildProcessError:
        pass


def make_undumpable():
    """prctl(PR_SET_DUMPABLE, 0): /proc/1/* and ptrace need CAP_SYS_PTRACE from now on."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)
    except Exception:  # noqa: BLE001 — best effort: no ctypes in this python
        pass


def read_request():
    """(nonce, {source, filename, input}, problem) from the request line on stdin."""
    chunks = []
    while True:
        try:
            chunk = os.read(0, 1 << 16)
        except BlockingIOError:
            import select

            select.select([0], [], [])
            continue
        if not chunk:
            break
        chunks.append(chunk)
        if b"\n" in chunk:
            break
    line = b"".join(chunks).split(b"\n", 1)[0]
    try:
        request = json.loads(line)
    except ValueError:
        request = None
    nonce = request.get("nonce") if isinstance(request, dict) else None
    if not valid_nonce(nonce):
        found = line.find(b'"nonce":"')
        nonce = None
        if found != -1:
            candidate = line[found + 9 : line.find(b'"', found + 9)].decode("ascii", "replace")
            nonce = candidate if valid_nonce(candidate) else None
        return nonce, None, "it is not a JSON object with a nonce"
    problem = ""
    files = request.get("files")
    if not isinstance(request.get("source"), str):
        problem = "source is not a string"
    elif files is not None:
        problem = files_problem(files, request.get("filename"))
    elif not valid_filename(request.get("filename")):
        problem = "filename is not a plain name ending in .py"
    return (
        nonce,
        {
            "source": request.get("source"),
            "filename": request.get("filename"),
            "files": files,
            "input": request.get("input"),
        },
        problem,
    )


# --- a program of several files (DESIGN.md §7) ----------------------------------
# Checked here again (the coordinator checked them first) and written fresh,
# never following a link: paths stay inside the job's folder.

MAX_FILES = 1000


def inside_path(name):
    """Whether name is a relative path inside the job's folder (protocol's pathProblem)."""
    if not isinstance(name, str) or not 0 < len(name) <= 1024 or name.startswith("/"):
        return False
    if any(ord(c) < 0x20 or c in "\x7f\\" for c in name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def files_problem(files, entry):
    """What is wrong with a request's files and entry, or "" when nothing is."""
    if not isinstance(files, list) or not 0 < len(files) <= MAX_FILES:
        return "files is not a list of 1 to %d files" % MAX_FILES
    paths = set()
    for file in files:
        if not isinstance(file, dict) or not all(
            isinstance(file.get(key), str) for key in ("path", "content")
        ):
            return "a file is not {path, content}"
        if not inside_path(file["path"]) or file["path"] in paths:
            return "the file path %s is not a new relative path inside the program's folder" % (
                json.dumps(file["path"]),
            )
        paths.add(file["path"])
    if entry not in paths or not entry.endswith(".py"):
        return "filename is not one of the files, or does not end in .py"
    return ""


def write_files(folder, files, entry):
    """Writes each file under folder, read-only, creating each folder fresh; the entry's text."""
    entry_source = ""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    for file in files:
        parts = file["path"].split("/")
        at = folder
        for part in parts[:-1]:
            at = os.path.join(at, part)
            try:
                os.mkdir(at, 0o700)
            except FileExistsError:
                if not os.path.isdir(at) or os.path.islink(at):
                    raise
        fd = os.open(os.path.join(folder, file["path"]), flags, 0o400)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass") as out:
            out.write(file["content"])
        if file["path"] == entry:
            entry_source = file["content"]
    return entry_source


def valid_nonce(nonce):
    return (
        isinstance(nonce, str)
        and 16 <= len(nonce) <= 128
        and nonce.isascii()
        and nonce.isalnum()
    )


def valid_filename(name):
    return (
        isinstance(name, str)
        and 1 <= len(name) <= 100
        and name.endswith(".py")
        and all(c in NAME_CHARS for c in name)
    )


# --- the program side ---------------------------------------------------------


def program_side(job_read, result_write):
    # Its own process group, so a supervisor outside a container (tests) can
    # end it with all it started; in a container it ends every process instead.
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    side = ProgramSide(result_write)
    write_all(result_write, b"R")
    request = side.read_job(job_read)
    envelope = side.run(request)
    side.flush_output()
    # A program that forked inside main must not answer twice.
    if _getpid() == side.pid:
        write_all(result_write, b"E%d\n" % len(envelope))
        write_all(result_write, envelope)
    _exit(0)


class ProgramSide:
    """
    Loads and runs the program. Everything it uses after the program's code
    has run is captured here first, as attributes and default arguments:
    a program that replaces json.dumps, builtins, print or sys.stdout changes
    what it sees, not what the runner uses.
    """

    def __init__(self, result_write):
        # Imported ahead of the job (a warm container has them loaded): the
        # runner's own needs and what most programs import.
        import asyncio  # noqa: F401 — loaded ahead for async mains
        import importlib.util
        import inspect
        import re
        import traceback
        import types

        self.pid = os.getpid()
        self.result_write = result_write
        self.sep = os.sep
        self.function_type = types.FunctionType
        self.method_type = types.MethodType
        self.coroutine_type = types.CoroutineType
        self.importlib_util = importlib.util
        self.inspect = inspect
        self.traceback = traceback
        self.loads = json.loads
        self.stdout = sys.stdout
        self.stderr = sys.stderr
        self.modules = sys.modules
        self.sys_path = sys.path
        try:
            sys.stdout.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass
        self.encode_value = make_encoder(re)
        self.dir = make_job_dir()

    def read_job(self, job_read):
        data = bytearray()
        while True:
            chunk = os.read(job_read, 1 << 20)
            if not chunk:
                break
            data += chunk
        os.close(job_read)
        length, _, body = bytes(data).partition(b"\n")
        if not length.isdigit() or len(body) != int(length):
            os._exit(4)
        return self.loads(body)

    def flush_output(self):
        for stream in (sys.stdout, sys.stderr, self.stdout, self.stderr):
            try:
                getattr(stream, "flush")()
            except BaseException:  # noqa: BLE001 — a program's stream may be anything
                pass

    def run(self, request):
        path = os.path.join(self.dir, request["filename"])
        source = request["source"]
        if request.get("files") is not None:
            try:
                source = write_files(self.dir, request["files"], request["filename"])
            except OSError as error:
                return failure(
                    "RUNTIME_ERROR", "the runner could not write the program's files: %s" % error
                )
        else:
            with open(path, "w", encoding="utf-8", errors="surrogatepass") as file:
                file.write(source)
            os.chmod(path, 0o400)
        try:
            code = compile(source, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as error:
            return failure("BAD_PROGRAM_FORMAT", BAD_PROGRAM_FORMAT, self.last_line(error))
        module = self.load(request["filename"], path, code)
        if isinstance(module, bytes):
            return module
        try:
            main = getattr(module, "main", None)
        except BaseException as error:  # noqa: BLE001
            return self.thrown(error)
        if not callable(main):
            found = "" if main is None else " (main is a %s)" % type(main).__name__
            return failure(
                "BAD_PROGRAM_FORMAT",
                BAD_PROGRAM_FORMAT,
                "the program has no callable main%s: define def main() or def main(input)"
                % found,
            )
        try:
            args = (request["input"],) if self.takes_input(main) else ()
            value = main(*args)
            if self.is_awaitable(value):
                value = self.settle(value)
        except BaseException as error:  # noqa: BLE001 — SystemExit, KeyboardInterrupt too
            return self.thrown(error)
        return self.encode_value(value)

    def load(self, filename, path, code):
        """Runs the module's code, or returns the failure envelope (bytes)."""
        stem = filename.rsplit("/", 1)[-1][: -len(".py")]
        name = stem if stem.isidentifier() and stem not in self.modules else "__labrun_program__"
        spec = self.importlib_util.spec_from_file_location(name, path)
        module = self.importlib_util.module_from_spec(spec)
        # The program sees the real builtins, not this module's private copy.
        module.__dict__["__builtins__"] = _builtins
        self.modules[name] = module
        # The entry's own folder stays importable, as a script's would.
        self.sys_path.insert(0, os.path.dirname(path))
        try:
            exec(code, module.__dict__)
        except (SyntaxError, ImportError) as error:
            return failure("BAD_PROGRAM_FORMAT", BAD_PROGRAM_FORMAT, self.last_line(error))
        except BaseException as error:  # noqa: BLE001
            return self.thrown(error, loading=True)
        return module

    def takes_input(self, main):
        """
        main(input) when main has a positional parameter, main() when it has
        none. Read from the code object where there is one: inspect runs on
        the real builtins, which the program may have replaced.
        """
        function, bound = main, 0
        if type(function) is self.method_type:
            function, bound = function.__func__, 1
        if type(function) is self.function_type:
            code = function.__code__
            return code.co_argcount - bound > 0 or bool(code.co_flags & 0x04)  # CO_VARARGS
        inspect = self.inspect
        try:
            parameters = inspect.signature(main).parameters.values()
        except (TypeError, ValueError):
            return True
        positional = (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.VAR_POSITIONAL,
        )
        return any(parameter.kind in positional for parameter in parameters)

    def is_awaitable(self, value):
        kind = type(value)
        return kind is self.coroutine_type or getattr(kind, "__await__", None) is not None

    def settle(self, awaitable):
        """Runs an async main to its end; tasks and threads it leaves behind are cut off."""
        import asyncio

        async def wait():
            return await awaitable

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(wait())

    def thrown(self, error, loading=False):
        if isinstance(error, SystemExit):
            code = show(lambda: repr(error.code) if error.code is not None else "")
            where = "while the program was loading" if loading else "before main returned"
            return failure("RUNTIME_ERROR", "the program called sys.exit(%s) %s" % (code, where))
        name = show(lambda: type(error).__name__)
        text = show(lambda: str(error))
        message = "%s: %s" % (name, text) if text else name
        return failure("RUNTIME_ERROR", message, self.user_traceback(error))

    def last_line(self, error):
        """The traceback's last line, with where a SyntaxError is when it says so."""
        def describe():
            lines = self.traceback.format_exception_only(type(error), error)
            last = lines[-1].strip() if lines else type(error).__name__
            if isinstance(error, SyntaxError) and error.lineno:
                where = (error.filename or "").rsplit("/", 1)[-1] or "<program>"
                last += " (%s, line %d)" % (where, error.lineno)
            return last

        return self.strip_dir(show(describe))

    def user_traceback(self, error):
        """The traceback with the program's own frames only, paths relative to its folder."""
        traceback = self.traceback
        prefix = self.dir + self.sep

        def render(exception, seen):
            seen.add(id(exception))
            lines = []
            cause, context = exception.__cause__, exception.__context__
            if cause is not None and id(cause) not in seen:
                lines += render(cause, seen)
                lines.append(
                    "\nThe above exception was the direct cause of the following exception:\n\n"
                )
            elif context is not None and not exception.__suppress_context__ and id(context) not in seen:
                lines += render(context, seen)
                lines.append("\nDuring handling of the above exception, another exception occurred:\n\n")
            frames = [
                frame
                for frame in traceback.extract_tb(exception.__traceback__)
                if frame.filename.startswith(prefix)
            ]
            if frames:
                lines.append("Traceback (most recent call last):\n")
                lines += traceback.StackSummary.from_list(frames).format()
            lines += traceback.format_exception_only(type(exception), exception)
            return lines

        return self.strip_dir(show(lambda: "".join(render(error, set())).rstrip("\n")))

    def strip_dir(self, text):
        return text.replace(self.dir + self.sep, "")


def show(make_text):
    """make_text(), or a placeholder when the program's own __str__ or __repr__ fails."""
    try:
        text = make_text()
        return text if isinstance(text, str) else "a value that cannot be shown as text"
    except BaseException:  # noqa: BLE001
        return "a value that cannot be shown as text"


def make_job_dir():
    base = os.environ.get("TMPDIR") or "/tmp"
    path = os.path.join(base, "labrun-job-" + os.urandom(8).hex())
    os.mkdir(path, 0o700)
    return path


class NotJson(Exception):
    """A result value with no JSON form; its text names the value's type."""


def make_encoder(re):
    """
    encode(value) → envelope bytes. json.dumps(allow_nan=False) semantics with a
    default hook honouring To_Json(), to_json(), __json__(), for_json(),
    dataclasses and model_dump(mode="json"), in that order; tuples are arrays.
    The C encoder and scanner are built now, so later patches to the json
    module, its classes or builtins cannot reach them.
    """
    c_make_encoder = json.encoder.c_make_encoder
    encode_string = json.encoder.encode_basestring
    py_make_iterencode = json.encoder._make_iterencode
    float_repr = float.__repr__
    join = "".join
    modules = sys.modules
    digits = re.compile(r"\d{16,}").search
    DIGITS = "0123456789"
    HOOKS = ("To_Json", "to_json", "__json__", "for_json")

    def default(value):
        kind = type(value)
        if isinstance(value, type):
            raise NotJson("a class (%s) is not JSON serializable" % value.__name__)
        for hook in HOOKS:
            method = getattr(value, hook, None)
            if callable(method):
                try:
                    return method()
                except Exception as error:  # noqa: BLE001
                    raise NotJson(
                        "%s() of %s raised %s: %s"
                        % (hook, kind.__name__, type(error).__name__, show(lambda: str(error)))
                    ) from None
        if getattr(kind, "__dataclass_fields__", None) is not None and "dataclasses" in modules:
            fields = modules["dataclasses"].fields(value)
            return {field.name: getattr(value, field.name) for field in fields}
        dump = getattr(value, "model_dump", None)
        if callable(dump):
            return dump(mode="json")
        raise NotJson("Object of type %s is not JSON serializable" % kind.__name__)

    def floatstr(value, inf=float("inf")):
        if value != value or value == inf or value == -inf:
            raise NotJson("float %s is not JSON compliant (NaN and Infinity have no JSON form)" % float_repr(value))
        return float_repr(value)

    def check_int(text):
        number = int(text)
        if number > MAX_SAFE_INTEGER or number < -MAX_SAFE_INTEGER:
            raise NotJson(
                "int %s is beyond ±(2^53−1): JSON numbers cannot carry it exactly; return it as a string"
                % (text if len(text) <= 40 else text[:40] + "…")
            )
        return number

    scan = json.JSONDecoder(parse_int=check_int).scan_once

    def iterencode(value):
        markers = {}
        if c_make_encoder is not None:
            return c_make_encoder(markers, default, encode_string, None, ":", ",", False, False, False)(value, 0)
        return py_make_iterencode(markers, default, encode_string, None, floatstr, ":", ",", False, False, True)(value, 0)

    def encode(value):
        try:
            text = join(iterencode(value))
            # A scan per digit is far quicker than the regex on a long text without them.
            if any(digit in text for digit in DIGITS) and digits(text) is not None:
                scan(text, 0)  # only ints can be out of range: check each one
        except NotJson as error:
            return not_json(error.args[0])
        except RecursionError:
            return not_json("the result nests too deeply")
        except ValueError as error:
            reason = show(lambda: str(error))
            if reason.startswith("Out of range float"):
                reason = "a float NaN or Infinity is not JSON compliant (they have no JSON form)"
            elif reason.startswith("Circular reference"):
                reason = "Circular reference detected: a list, dict or object contains itself"
            return not_json(reason)
        except TypeError as error:
            return not_json(show(lambda: str(error)))
        except Exception as error:  # noqa: BLE001 — a model_dump or a hook's result that fails
            return not_json("%s: %s" % (type(error).__name__, show(lambda: str(error))))
        return b"".join((b'{"ok":true,"result":', text.encode("utf-8", "surrogatepass"), b"}"))

    def not_json(reason):
        return failure("RESULT_NOT_JSON", "main's result cannot be serialised to JSON: " + reason, reason)

    return encode


if __name__ == "__main__":
    main()

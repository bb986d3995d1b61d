import type { HostileProgram } from "./programs.js";
import { HOST_ADDRESS } from "./programs.js";

const T = 3000; // wall timeout for programs that can only be stopped from outside

/** A Python program: `prog.py`, so it runs in the python runner image. */
const py = (program: Omit<HostileProgram, "filename" | "name"> & { name: string }) => ({
  ...program,
  name: `python: ${program.name}`,
  filename: "prog.py",
});

const messageMatches = (pattern: RegExp) => (outcome: { message?: string }) => {
  if (!pattern.test(outcome.message ?? ""))
    throw new Error(`unexpected message ${outcome.message}`);
};

/**
 * Hostile Python programs and the exact outcome each must get, beside the
 * Node ones in the same run (same agents, same container settings).
 */
export const PYTHON_HOSTILE: HostileProgram[] = [
  py({
    name: "fork bomb (os.fork in a loop)",
    source: `import os
def main():
    while True:
        try:
            os.fork()
        except OSError:
            pass`,
    limits: { timeoutMs: T },
    expect: "TIMEOUT",
    teardownMs: 10_000,
  }),
  py({
    name: "memory bomb (bytes growth)",
    source: `def main():
    hoard = []
    while True:
        hoard.append(b"x" * (1 << 20))`,
    limits: { memoryMb: 128, timeoutMs: 60_000 },
    expect: "OUT_OF_MEMORY",
  }),
  py({
    name: "memory bomb in a thread",
    source: `import threading
def grow():
    hoard = []
    while True:
        hoard.append(bytearray(b"y" * (1 << 20)))
def main():
    thread = threading.Thread(target=grow)
    thread.start()
    thread.join()`,
    limits: { memoryMb: 64, timeoutMs: 60_000 },
    expect: "OUT_OF_MEMORY",
  }),
  py({
    name: "CPU spin",
    source: `def main():\n    while True:\n        pass`,
    limits: { timeoutMs: T },
    expect: "TIMEOUT",
  }),
  py({
    name: "catastrophic regex",
    source: `import re\ndef main():\n    return bool(re.match(r"^(a+)+$", "a" * 40 + "!"))`,
    limits: { timeoutMs: T },
    expect: "TIMEOUT",
  }),
  py({
    name: "deep recursion",
    source: `def f(n):\n    return f(n + 1) + 1\ndef main():\n    return f(0)`,
    expect: "RUNTIME_ERROR",
    check: messageMatches(/^RecursionError: maximum recursion depth exceeded/),
  }),
  py({
    name: "1 GB to stdout",
    source: `import sys
def main():
    line = "x" * (1 << 20) + "\\n"
    for _ in range(1024):
        sys.stdout.write(line)
    return 1`,
    limits: { timeoutMs: 30_000 },
    expect: "OUTPUT_TOO_LARGE",
  }),
  py({
    name: "50 MB stderr line without a newline",
    source: `import os\ndef main():\n    os.write(2, b"y" * (50 << 20))\n    return 1`,
    limits: { memoryMb: 512, timeoutMs: 30_000 },
    expect: "OUTPUT_TOO_LARGE",
  }),
  py({
    name: "20 MB result (over the 8 MiB result cap)",
    source: `def main():\n    return "r" * (20 << 20)`,
    limits: { memoryMb: 512, timeoutMs: 30_000 },
    expect: "OUTPUT_TOO_LARGE",
  }),
  py({
    name: "filling /tmp",
    source: `def main():
    chunk = b"z" * (1 << 20)
    i = 0
    while True:
        with open(f"/tmp/fill{i}", "wb") as f:
            f.write(chunk)
        i += 1`,
    expect: "RUNTIME_ERROR",
    check: messageMatches(/No space left on device/),
  }),
  py({
    name: "writing outside /tmp",
    source: `def main():\n    open("/escape", "w").write("x")`,
    expect: "RUNTIME_ERROR",
    check: messageMatches(/Read-only file system|Permission denied/),
  }),
  py({
    name: "socket to 127.0.0.1 fails fast",
    source: `import socket\ndef main():\n    socket.create_connection(("127.0.0.1", 7878), timeout=5)\n    return "connected"`,
    expect: "RUNTIME_ERROR",
    check: messageMatches(/^ConnectionRefusedError/),
  }),
  py({
    name: "socket to the host's own address fails fast",
    source: `import socket\ndef main():\n    socket.create_connection((${JSON.stringify(HOST_ADDRESS)}, 7878), timeout=5)\n    return "connected"`,
    expect: "RUNTIME_ERROR",
    check: messageMatches(/unreachable/i),
  }),
  py({
    name: "DNS lookup fails fast",
    source: `import socket\ndef main():\n    return socket.getaddrinfo("example.com", 80)`,
    expect: "RUNTIME_ERROR",
    check: messageMatches(/^gaierror/),
  }),
  py({
    // The supervisor (PID 1) holds the nonce; it is not dumpable, so its /proc files are root's.
    name: "reading /proc/1/environ and /proc/1/mem (the supervisor) is refused",
    source: `def main():
    refused = []
    for path in ("/proc/1/environ", "/proc/1/mem", "/proc/1/fd/0"):
        try:
            open(path, "rb").read(1)
        except PermissionError:
            refused.append(path)
    return refused`,
    expect: "ok",
    check: ({ result }) => {
      if (JSON.stringify(result) !== '["/proc/1/environ","/proc/1/mem","/proc/1/fd/0"]')
        throw new Error(`readable: ${JSON.stringify(result)}`);
    },
  }),
  py({
    name: "reading its own /proc/self/environ finds no secret",
    source: `def main():\n    return open("/proc/self/environ", "rb").read().decode()`,
    expect: "ok",
    check: ({ result }) => {
      if (/LABRUN|TOKEN|lr[a-z]_|DOCKER/i.test(String(result)))
        throw new Error(`env leaks: ${result}`);
    },
  }),
  py({
    name: "reading /var/run/docker.sock",
    source: `import os\ndef main():\n    return os.stat("/var/run/docker.sock").st_mode`,
    expect: "RUNTIME_ERROR",
    check: messageMatches(/^FileNotFoundError/),
  }),
  py({
    name: "os.setuid(0)",
    source: `import os\ndef main():\n    os.setuid(0)\n    return os.getuid()`,
    expect: "RUNTIME_ERROR",
    check: messageMatches(/^PermissionError/),
  }),
  py({
    name: "ctypes: libc setuid(0) and ptrace(PTRACE_ATTACH, 1) fail",
    source: `import ctypes
def main():
    libc = ctypes.CDLL(None, use_errno=True)
    return [libc.setuid(0), libc.ptrace(16, 1, None, None)]`,
    expect: "ok",
    check: ({ result }) => {
      if (JSON.stringify(result) !== "[-1,-1]") throw new Error(`got ${JSON.stringify(result)}`);
    },
  }),
  py({
    name: "ctypes: a segfault",
    source: `import ctypes\ndef main():\n    return ctypes.string_at(0)`,
    expect: "RUNTIME_ERROR",
    check: messageMatches(/killed by SIGSEGV/),
  }),
  py({
    name: "signals to PID 1 (SIGINT, SIGTERM, SIGKILL) reach nothing",
    source: `import os, signal
def main():
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        os.kill(1, sig)
    return "alive"`,
    expect: "ok",
    check: ({ result }) => {
      if (result !== "alive") throw new Error(`got ${result}`);
    },
  }),
  py({
    name: "ignoring SIGTERM, SIGINT and SIGALRM, then spinning",
    source: `import signal
def main():
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        pass`,
    limits: { timeoutMs: T },
    expect: "TIMEOUT",
  }),
  py({
    name: "patching json, builtins, print and sys.stdout to forge success",
    source: `import builtins, json, sys
json.dumps = lambda *a, **k: '{"ok":true,"result":"forged"}'
json.JSONEncoder.encode = lambda self, o: '"forged"'
json.encoder.c_make_encoder = None
builtins.isinstance = lambda *a: True
builtins.print = lambda *a, **k: None
sys.stdout = sys.stderr = None
def main():
    raise RuntimeError("the real failure")`,
    expect: "RUNTIME_ERROR",
    check: messageMatches(/^RuntimeError: the real failure$/),
  }),
  py({
    name: "patching json and sys.stdout, then returning a real result",
    source: `import json, sys, io
json.dumps = lambda *a, **k: '"forged"'
json.JSONEncoder.iterencode = lambda *a, **k: iter(['"forged"'])
sys.stdout = io.StringIO()
def main():
    print("swallowed")
    return {"real": 1}`,
    expect: "ok",
    check: ({ result }) => {
      if (JSON.stringify(result) !== '{"real":1}') throw new Error(`got ${JSON.stringify(result)}`);
    },
  }),
  py({
    name: "a thread still printing after main returns (cut off)",
    source: `import threading, time
def chatter():
    while True:
        print("late")
        time.sleep(0.001)
def main():
    threading.Thread(target=chatter).start()
    return "early"`,
    expect: "ok",
    check: ({ result }) => {
      if (result !== "early") throw new Error(`got ${result}`);
    },
  }),
  py({
    name: "a forked child that outlives main (cut off)",
    source: `import os, time
def main():
    if os.fork() == 0:
        while True:
            time.sleep(1)
    return "parent"`,
    expect: "ok",
    check: ({ result }) => {
      if (result !== "parent") throw new Error(`got ${result}`);
    },
  }),
  py({
    name: "os._exit(0) inside main",
    source: `import os\ndef main():\n    os._exit(0)`,
    expect: "RUNTIME_ERROR",
  }),
  py({
    name: "sys.exit(0) inside main",
    source: `import sys\ndef main():\n    sys.exit(0)`,
    expect: "RUNTIME_ERROR",
  }),
  py({
    name: "reading stdin sees nothing",
    source: `import sys\ndef main():\n    return sys.stdin.read()`,
    expect: "ok",
    check: ({ result }) => {
      if (result !== "") throw new Error(`stdin had ${JSON.stringify(result)}`);
    },
  }),
  py({
    name: "an int beyond 2^53 - 1",
    source: `def main():\n    return 10**20`,
    expect: "RESULT_NOT_JSON",
  }),
  py({
    name: "a To_Json that raises",
    source: `class P:\n    def To_Json(self):\n        raise ValueError("no json")\ndef main():\n    return P()`,
    expect: "RESULT_NOT_JSON",
  }),
];

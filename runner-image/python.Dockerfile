# The Python runner image: this machine's own python3 (interpreter, standard
# library without its test suites, lib-dynload) and the shared libraries `ldd`
# lists, each at its own path, plus runner.py — nothing pulled from a registry,
# no pip. The build context is assembled by agent/sandbox/python-image.ts,
# which fills in the interpreter's path below.
FROM scratch
COPY rootfs/ /
USER 65534:65534
WORKDIR /tmp
ENTRYPOINT ["@PYTHON@", "-I", "-B", "-X", "utf8", "/runner/runner.py"]

#!/usr/bin/env python3
"""Opens every file of the hostile corpus (tests/data/hostile/cases.json, written by
tools/make_hostile_corpus.py) the way a user would, through mythos-cli and
mythos-explorer --screenshot, and checks what happens:

  error    the program exits with a status of 1 or 2 (not a signal, not a timeout) and
           prints exactly one error line, which names the file (or the option) at fault;
  warning  it exits 0 and says on stderr what is odd, naming the file;
  ok       it exits 0.

    run_hostile.py CORPUS_DIR BIN_DIR [--only NAME]

BIN_DIR holds mythos-cli and mythos-explorer. Prints one line per check and a closing
"N passed, M failed" line; exits 1 when anything failed.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

TIMEOUT = 120
ERROR_LINE = re.compile(r"^mythos-(cli|explorer)(?: [a-z]+)?: (?:error: )?(?!warning)")
VIEWS = ["halting", "routing", "kv", "stability", "compare", "sweep"]


def run(cmd, env):
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        return None, "", f"timed out after {TIMEOUT} s"
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def error_lines(stderr):
    return [l for l in stderr.splitlines() if ERROR_LINE.match(l)]


def check(expect, names, rc, out, err):
    """An empty string when the outcome is as expected, else why not."""
    if rc is None:
        return err
    if rc < 0 or rc >= 128:
        return f"crashed (status {rc}): {err.strip()[-400:]}"
    if expect == "error":
        if rc == 0:
            return "accepted (exit 0); expected an error"
        lines = error_lines(err)
        if len(lines) != 1:
            return f"expected one error line, got {len(lines)}: {err.strip()[-600:]!r}"
        if not any(n in lines[0] for n in names):
            return f"the error does not name {names[0]!r}: {lines[0]!r}"
        if "filesystem error" in lines[0] or "json.exception" in lines[0]:
            return f"a library's raw message: {lines[0]!r}"
        return ""
    if rc != 0:
        return f"exit {rc}: {err.strip()[-600:]!r}"
    if expect == "warning":
        warn = [l for l in err.splitlines() if "warning" in l and any(n in l for n in names)]
        if not warn:
            return f"no warning naming {names[0]!r} on stderr: {err.strip()[-400:]!r}"
    return ""


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    corpus, bindir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    cli, gui = os.path.join(bindir, "mythos-cli"), os.path.join(bindir, "mythos-explorer")
    manifest = json.load(open(os.path.join(corpus, "cases.json")))
    good = os.path.join(corpus, manifest["model"])
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    tmp = tempfile.mkdtemp(prefix="mythos_hostile_")
    env["HOME"] = tmp  # no settings from the user's own sessions
    env["XDG_CONFIG_HOME"] = os.path.join(tmp, "config")
    loop = os.path.join(tmp, "loop")
    os.symlink(loop, loop)  # a symlink to itself
    passed = failed = 0
    view = 0
    for c in manifest["cases"]:
        name, kind, expect = c["name"], c["kind"], c["expect"]
        if only and name != only:
            continue
        out = os.path.join(tmp, name)
        shot = out + ".png"
        checks = []  # (label, command, names the error must mention)
        if kind == "model":
            path = loop if c.get("symlink_loop") else os.path.join(corpus, c.get("path", name))
            names = [path]
            tokenizer_case = name.startswith("tokenizer_")
            checks.append(("trace", [cli, "trace", "--model", path, "--prompt", "a=1;?a", "--loops", "2",
                                     "--out", out + ".json"], names))
            if not tokenizer_case:
                checks.append(("info", [cli, "info", "--model", path], names))
            checks.append(("window", [gui, "--screenshot", shot, "--model", path, "--prompt", "a=1;?a"], names))
        elif kind == "trace":
            path = os.path.join(corpus, name + ".json")
            v = VIEWS[view % 4]
            view += 1
            checks.append((f"window ({v})", [gui, "--screenshot", shot, "--trace", path, "--view", v], [path]))
        elif kind == "prompts":
            path = os.path.join(corpus, name + ".jsonl")
            checks.append(("eval", [cli, "eval", "--model", good, "--prompts", path, "--loops", "1,2"], [path]))
        elif kind == "ids":
            ids = open(os.path.join(corpus, name + ".txt")).read()
            checks.append(("trace", [cli, "trace", "--model", good, "--ids", ids, "--loops", "1",
                                     "--out", out + ".json"], ["--ids", "id"]))
        elif kind == "variant":
            text = open(os.path.join(corpus, name + ".json")).read()
            checks.append(("window", [gui, "--screenshot", shot, "--model", good, "--compare-variant", text,
                                      "--view", "compare"], ["variant", "config"]))
        else:
            print(f"FAIL {name}: unknown kind {kind!r}")
            failed += 1
            continue
        for label, cmd, names in checks:
            rc, so, se = run(cmd, env)
            why = check(expect, names, rc, so, se)
            if why:
                failed += 1
                print(f"FAIL {name} [{label}]: {why}")
            else:
                passed += 1
                line = (error_lines(se) or [""])[0] if expect == "error" else expect
                print(f"ok   {name} [{label}]: {line[:160]}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

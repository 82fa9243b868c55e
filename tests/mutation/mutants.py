#!/usr/bin/env python3
"""The mutation catalogue's reader and applier, used by scripts/mutate.sh.

One file per mutant in tests/mutation/mutants/*.mut (format: README.md).
Snippets are applied by exact string match, never by line number, and a
snippet that is not found exactly once is an error the caller reports
loudly: the code moves under the catalogue, and a mutant that silently
mutates nothing would be counted as killed or survived for the wrong
reason.

  mutants.py ids DIR [ID...]            ids in catalogue order (all, or these)
  mutants.py get DIR ID FIELD           one header field ("" when absent)
  mutants.py list DIR                   id, file, killing tests, promise
  mutants.py check DIR ROOT [ID...]     every snippet found exactly once
  mutants.py apply DIR ID ROOT SAVE     mutate ROOT, original kept in SAVE
  mutants.py revert DIR ID ROOT SAVE    put the original back
  mutants.py targets BUILD TABLE < J    build targets the tests in J need
                                        (J: ctest --show-only=json-v1)
"""
import json
import os
import re
import shutil
import signal
import sys

FIELDS = ("id", "promise", "file", "tests", "lock", "build", "today", "killer")
REQUIRED = ("id", "promise", "file", "tests", "today", "killer")
ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


class CatalogueError(Exception):
    pass


def parse(path):
    """Header fields, then hunks: '@@ original' / '@@ replacement' blocks,
    each hunk closed by the next '@@ original' or by '@@ end'."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    m = {"hunks": [], "path": path}
    i = 0
    while i < len(lines) and not lines[i].startswith("@@"):
        line = lines[i]
        i += 1
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, val = line.partition(":")
        if not sep or key not in FIELDS:
            raise CatalogueError("%s:%d: expected 'FIELD: value' with FIELD one of %s"
                                 % (path, i, ", ".join(FIELDS)))
        if key in m:
            raise CatalogueError("%s:%d: field '%s' given twice" % (path, i, key))
        m[key] = val.strip()
    block, buf, orig = None, [], None
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("@@"):
            marker = line[2:].strip()
            if block == "original":
                orig = "\n".join(buf)
            elif block == "replacement":
                m["hunks"].append((orig, "\n".join(buf)))
                orig = None
            expect = ("original", "end") if block in (None, "replacement") else ("replacement",)
            if marker not in expect:
                raise CatalogueError("%s:%d: '@@ %s' where '@@ %s' was expected"
                                     % (path, i, marker, "' or '@@ ".join(expect)))
            if marker == "end":
                block = "end"
                break
            block, buf = marker, []
        else:
            buf.append(line)
    if block != "end":
        raise CatalogueError("%s: the hunks must close with '@@ end'" % path)
    if any(l.strip() for l in lines[i:]):
        raise CatalogueError("%s:%d: text after '@@ end'" % (path, i + 1))
    for k in REQUIRED:
        if not m.get(k):
            raise CatalogueError("%s: missing field '%s'" % (path, k))
    if not ID_RE.match(m["id"]):
        raise CatalogueError("%s: id '%s' must be lower-case letters, digits and '-'"
                             % (path, m["id"]))
    if m["today"] not in ("killed", "survives"):
        raise CatalogueError("%s: 'today' must be 'killed' or 'survives'" % path)
    if m.get("lock", "") not in ("", "docker"):
        raise CatalogueError("%s: 'lock' may only be 'docker'" % path)
    if not m["hunks"]:
        raise CatalogueError("%s: no hunk" % path)
    for o, r in m["hunks"]:
        if not o.strip() or o == r:
            raise CatalogueError("%s: a hunk with an empty original, or a replacement "
                                 "equal to its original" % path)
    return m


def load(d):
    ms, seen = [], {}
    for name in sorted(os.listdir(d)):
        if not name.endswith(".mut"):
            continue
        m = parse(os.path.join(d, name))
        if m["id"] in seen:
            raise CatalogueError("%s: id '%s' also used by %s" % (name, m["id"], seen[m["id"]]))
        seen[m["id"]] = name
        ms.append(m)
    if not ms:
        raise CatalogueError("%s: no *.mut file" % d)
    return ms


def select(ms, ids):
    if not ids:
        return ms
    by = {m["id"]: m for m in ms}
    unknown = [i for i in ids if i not in by]
    if unknown:
        raise CatalogueError("unknown mutant id(s): %s (see --list)" % ", ".join(unknown))
    return [by[i] for i in ids]


def mutated(m, root):
    """The mutated text of m's file, or a CatalogueError naming each hunk
    whose original is not there exactly once."""
    target = os.path.join(root, m["file"])
    try:
        with open(target, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise CatalogueError("%s: %s: %s" % (m["id"], m["file"], e.strerror))
    errs = []
    for n, (o, r) in enumerate(m["hunks"], 1):
        c = text.count(o)
        if c != 1:
            first = next((l.strip() for l in o.split("\n") if l.strip()), "")
            errs.append("%s: hunk %d of %s: original snippet found %d times in %s "
                        "(want exactly 1; it starts '%s')"
                        % (m["id"], n, os.path.basename(m["path"]), c, m["file"], first[:60]))
            continue
        text = text.replace(o, r, 1)
    if errs:
        raise CatalogueError("\n".join(errs))
    return text


def targets(build, table, show):
    """The targets to build before running the tests ctest listed in
    `show`: a test whose command is a program of the build tree needs that
    program; a script test needs what TABLE names for it; any other test
    gets "ALL" (build everything), so a missing table entry costs time,
    never a stale binary."""
    need = {}
    with open(table, encoding="utf-8") as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if words:
                need[words[0]] = words[1:]
    out = []
    build = os.path.realpath(build)
    for t in json.loads(show).get("tests", []):
        cmd = t.get("command") or [""]
        prog = os.path.realpath(cmd[0]) if cmd[0] else ""
        if t["name"] in need:
            add = need[t["name"]]
        elif prog.startswith(build + os.sep):
            add = [os.path.basename(prog)]
        else:
            return ["ALL"]
        out += [x for x in add if x not in out]
    return out or ["ALL"]


def main(argv):
    if len(argv) == 4 and argv[1] == "targets":
        print(" ".join(targets(argv[2], argv[3], sys.stdin.read())))
        return 0
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    cmd, d = argv[1], argv[2]
    ms = load(d)
    if cmd == "ids":
        for m in select(ms, argv[3:]):
            print(m["id"])
    elif cmd == "get":
        m = select(ms, [argv[3]])[0]
        print(m.get(argv[4], ""))
    elif cmd == "list":
        for m in ms:
            print("%-34s %-22s today: %-8s tests: %s\n    %s\n    killer: %s"
                  % (m["id"], m["file"], m["today"], m["tests"], m["promise"], m["killer"]))
    elif cmd == "check":
        errs = []
        for m in select(ms, argv[4:]):
            try:
                mutated(m, argv[3])
            except CatalogueError as e:
                errs.append(str(e))
        if errs:
            sys.stderr.write("\n".join(errs) + "\n")
            return 1
    elif cmd == "apply":
        m = select(ms, [argv[3]])[0]
        root, save = argv[4], argv[5]
        text = mutated(m, root)
        os.makedirs(save, exist_ok=True)
        shutil.copy2(os.path.join(root, m["file"]), os.path.join(save, "original"))
        with open(os.path.join(root, m["file"]), "w", encoding="utf-8") as f:
            f.write(text)
    elif cmd == "revert":
        m = select(ms, [argv[3]])[0]
        root, save = argv[4], argv[5]
        # copyfile, not copy2: the restored file must look newer than the
        # mutant's object file, so the next build recompiles it.
        shutil.copyfile(os.path.join(save, "original"), os.path.join(root, m["file"]))
        os.unlink(os.path.join(save, "original"))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `--list | head`
    try:
        sys.exit(main(sys.argv))
    except CatalogueError as e:
        sys.stderr.write("mutation catalogue: %s\n" % e)
        sys.exit(1)

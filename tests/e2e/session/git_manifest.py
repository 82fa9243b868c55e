#!/usr/bin/env python3
"""The whole host .git before and after a session, compared.
  git_manifest.py snap GITDIR OUT             every path under GITDIR (files,
                                              directories, symlinks) with its
                                              type, mode and content hash
  git_manifest.py compare OUT GITDIR ID       exit 1, naming each path, when
                                              anything changed other than
                                              what the session may add
A session may only add its review branch (refs/heads/agentsafe/ID and its
reflog), its provenance note (refs/notes/agentsafe) and the objects fetched
for them, and append to reflogs. Anything
else new, changed or gone fails, new files first among them hooks/."""
import hashlib
import json
import os
import re
import stat
import sys


def snap(top):
    m = {}
    for root, dirs, files in os.walk(top):
        dirs.sort()
        for name in dirs + sorted(files):
            p = os.path.join(root, name)
            rel = os.path.relpath(p, top)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                what = "link:" + os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for b in iter(lambda: f.read(1 << 20), b""):
                        h.update(b)
                what = "file:" + h.hexdigest()
            elif stat.S_ISDIR(st.st_mode):
                what = "dir"
            else:
                what = "other"
            m[rel] = "%o %s" % (st.st_mode, what)
    return m


def allowed_new(rel, sid):
    branch = re.escape(sid)
    return re.fullmatch(
        r"objects/[0-9a-f]{2}(/[0-9a-f]{38,62})?"
        r"|objects/pack/pack-[0-9a-f]{40,64}\.(pack|idx|rev)"
        r"|(logs/)?refs/heads/agentsafe(/" + branch + ")?"
        r"|(logs/)?refs/notes(/agentsafe)?"
        r"|FETCH_HEAD", rel) is not None


def allowed_change(rel):
    # Reflogs are appended to; FETCH_HEAD is rewritten by any fetch.
    return rel == "FETCH_HEAD" or rel.startswith("logs/")


def compare(before, after, sid):
    bad = []
    for rel in sorted(set(before) | set(after)):
        b, a = before.get(rel), after.get(rel)
        if b == a:
            continue
        if b is None:
            mode = int(a.split()[0], 8)
            executable = stat.S_ISREG(mode) and mode & 0o111
            if not allowed_new(rel, sid) or executable:
                bad.append("new %s (%s)" % (rel, a))
        elif a is None:
            bad.append("removed %s (%s)" % (rel, b))
        elif b.split()[0] != a.split()[0] or not allowed_change(rel):
            bad.append("changed %s (%s -> %s)" % (rel, b, a))
    return bad


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "snap":
        with open(sys.argv[3], "w") as f:
            json.dump(snap(sys.argv[2]), f, indent=0, sort_keys=True)
        return 0
    if len(sys.argv) == 5 and sys.argv[1] == "compare":
        with open(sys.argv[2]) as f:
            before = json.load(f)
        bad = compare(before, snap(sys.argv[3]), sys.argv[4])
        for b in bad:
            print(b)
        return 1 if bad else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

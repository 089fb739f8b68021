#!/usr/bin/env python3
"""Usage: dump.py FILE...

Parses each kickstart with pykickstart + mic's extensions (mic_handler.py) and
prints one line of JSON per file, in the normalised shape `img-client ks check
--json FILE` prints, plus what pykickstart complained about:

  {"file", "repos": [{"name","baseurl","mirrorlist",...}], "packages",
   "groups", "exclusions", "excluded_groups", "partitions": [{"mountpoint",
   "size","fstype","ondisk","label",...}], "scripts": [{"kind","nochroot",
   "interpreter","erroronfail","log","body"}], "attachments", "prepackages",
   "btrfs", "errors": [...], "fatal": null | "message", "warnings": [...]}

Package, group and exclusion lists are sorted and unique (pykickstart keeps
them as sets). Partition sizes are MiB integers or null. `%include` resolves
relative to the including file; a missing include is recorded in "errors".
A fatal error stops pykickstart: "fatal" holds it and the rest is what was
parsed up to that point.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mic_handler  # noqa: E402
from pykickstart.constants import (  # noqa: E402
    KS_SCRIPT_ONERROR, KS_SCRIPT_POST, KS_SCRIPT_PRE, KS_SCRIPT_PREINSTALL, KS_SCRIPT_TRACEBACK)

KINDS = {
    KS_SCRIPT_PRE: "pre",
    KS_SCRIPT_POST: "post",
    KS_SCRIPT_TRACEBACK: "traceback",
    KS_SCRIPT_PREINSTALL: "pre-install",
    KS_SCRIPT_ONERROR: "onerror",
    mic_handler.KS_SCRIPT_PACK: "pack",
}


def _none_if_empty(v):
    return v if v not in ("", None) else None


def _size(v):
    if v is None or v == "":
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def dump(path):
    parser, fatal, warns = mic_handler.parse_file(os.path.abspath(path))
    h = parser.handler
    pk = h.packages
    repos = [{
        "name": r.name,
        "baseurl": _none_if_empty(r.baseurl),
        "mirrorlist": _none_if_empty(r.mirrorlist),
        "cost": getattr(r, "cost", None),
        "priority": getattr(r, "priority", None),
        "save": bool(getattr(r, "save", False)),
        "debuginfo": bool(getattr(r, "debuginfo", False)),
        "source": bool(getattr(r, "source", False)),
        "gpgkey": getattr(r, "gpgkey", None),
        "ssl_verify": getattr(r, "ssl_verify", None),
        "disable": bool(getattr(r, "disable", False)),
        "includepkgs": list(r.includepkgs or []),
        "excludepkgs": list(r.excludepkgs or []),
        "proxy": _none_if_empty(getattr(r, "proxy", None)),
    } for r in h.repo.repoList]
    partitions = [{
        "mountpoint": p.mountpoint,
        "size": _size(p.size),
        "fstype": _none_if_empty(p.fstype),
        "ondisk": _none_if_empty(p.disk),
        "label": _none_if_empty(p.label),
        "grow": bool(p.grow),
        "fsoptions": _none_if_empty(p.fsopts),
        "align": getattr(p, "align", None),
        "extoptions": getattr(p, "extopts", None),
        "part_type": getattr(p, "part_type", None),
        "uuid": getattr(p, "uuid", None),
    } for p in h.partition.partitions]
    scripts = [{
        "kind": KINDS.get(s.type, str(s.type)),
        # pykickstart only knows chroot for %post: %pre/%pack/... keep
        # inChroot=False, i.e. they always report nochroot=true here.
        "nochroot": not s.inChroot,
        "interpreter": s.interp,
        "erroronfail": bool(s.errorOnFail),
        "log": s.logfile,
        "body": s.script,
    } for s in h.scripts]
    btrfs = [{
        "mountpoint": b.mountpoint,
        "devices": list(b.devices),
        "subvol": bool(b.subvol),
        "name": b.name,
        "label": _none_if_empty(b.label),
    } for b in h.btrfs.btrfsList]
    return {
        "file": path,
        "repos": repos,
        "packages": sorted(set(pk.packageList)),
        "groups": sorted({g.name for g in pk.groupList}),
        "exclusions": sorted(set(pk.excludedList)),
        "excluded_groups": sorted({g.name for g in pk.excludedGroupList}),
        "partitions": partitions,
        "scripts": scripts,
        "attachments": list(h.attachment.packageList),
        "prepackages": list(h.prepackages.packageList),
        "btrfs": btrfs,
        "errors": parser.ks_errors,
        "fatal": fatal,
        "warnings": warns,
    }


def main(argv):
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for path in argv:
        print(json.dumps(dump(path), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

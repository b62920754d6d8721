#!/usr/bin/env python3
"""status_claim.py - what `hamnsync status --json` claims, for the
integration tests' honesty checks (lib.sh: hs_wait_same, hs_sync_check).

  status_claim.py wait BIN PRIMARY_CONF STANDBY_CONF|- SECONDS OUTDIR SOURCE...
      Poll both nodes' status every 0.1 s until the primary says every set
      holding one of the SOURCEs (a source of the set, or below one, or
      above one) is "in-sync" with lag.files_pending 0 and its standby
      connected, and (STANDBY_CONF not "-") the standby says
      promote_ready.ready, or at most SECONDS.  The standby's verdict is
      required only once the primary says every set in-sync: it covers the
      whole node.  Exit 0 when they claim it (last answers saved as
      OUTDIR/primary.json and OUTDIR/standby.json), 1 on timeout: why, on
      stderr.

  status_claim.py show FILE...
      One line per status file: daemon, peer, lag, each set's state,
      promote_ready and the warnings.

  status_claim.py applied FILE T0
      A standby's status after a one-shot sync begun at T0 (epoch
      seconds): its daemon runs, lag.last_applied is at or after T0 (its
      runs were applied) and no set is in "error".  Prints last_applied.

  status_claim.py expect FILE PYTHON-EXPRESSION
      Exit 0 when the expression, with `d` the status object, is true
      (the sets' states printed); else print the status (as `show`) on
      stderr and exit 1, or 3 when status said only an error (UNKNOWN).

The trees are compared by the caller, once, after the claim: status saying
in-sync while they differ is a lie, which the caller counts as a failure.
"""
import datetime
import json
import os
import subprocess
import sys
import time


def status(binary, conf):
    """The status object of the node of `conf`, or (None, why)."""
    try:
        p = subprocess.run([binary, "-c", conf, "status", "--json"],
                           capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return None, "status took more than 10 s"
    try:
        return json.loads(p.stdout), ""
    except ValueError:
        return None, "status exit %d, no JSON: %s" % (
            p.returncode, (p.stdout + p.stderr).strip()[:300])


def sets_of(conf, sources):
    """Names of the [path] sets of `conf` that hold one of `sources`."""
    sets, name = {}, None
    with open(conf) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                name = None
                if line.startswith("[path ") and line.endswith("]"):
                    name = line[6:-1].strip()
                    sets.setdefault(name, [])
            elif name is not None and "=" in line:
                k, v = (x.strip() for x in line.split("=", 1))
                if k == "source":
                    sets[name].append(v.rstrip("/"))
    want = set()
    for s in sources:
        s = s.rstrip("/")
        for n, srcs in sets.items():
            for src in srcs:
                if s == src or s.startswith(src + "/") or \
                        src.startswith(s + "/"):
                    want.add(n)
    return want


def show(d):
    if d is None:
        return "no status"
    paths = " ".join("%s=%s" % (p.get("name"), p.get("state"))
                     for p in d.get("paths") or [])
    pr = d.get("promote_ready") or {}
    lag = d.get("lag") or {}
    peer = d.get("peer") or {}
    w = "; ".join("%s: %s" % (x.get("severity"), x.get("text"))
                  for x in d.get("warnings") or [])
    return ("%s %s daemon %s, peer %s, lag %s s / %s files, last_applied "
            "%s, paths [%s], promote_ready %s %s%s" % (
                d.get("node"), d.get("role"), d.get("daemon"),
                peer.get("state"), lag.get("seconds"),
                lag.get("files_pending"), lag.get("last_applied"), paths,
                pr.get("ready"), pr.get("reasons"),
                ", warnings: " + w if w else ""))


def brief(d):
    """The states of the sets and the verdict, in a few words."""
    paths = " ".join("%s=%s" % (p.get("name"), p.get("state"))
                     for p in d.get("paths") or [])
    return "%s: %s, promote_ready %s" % (
        d.get("role"), paths or "no sets",
        (d.get("promote_ready") or {}).get("ready"))


def stale(d):
    """A running daemon that did not answer: its last saved status is
    shown, which claims nothing about now."""
    return any("did not answer" in (w.get("text") or "")
               for w in d.get("warnings") or [])


def primary_says(d, want):
    """(claims in-sync for the sets `want`, claims every set in-sync)."""
    if d is None or d.get("daemon") != "running" or stale(d) or \
            (d.get("peer") or {}).get("state") != "connected" or \
            (d.get("lag") or {}).get("files_pending") != 0:
        return False, False
    states = {p.get("name"): p.get("state") for p in d.get("paths") or []}
    mine = all(states.get(n) == "in-sync" for n in want)
    every = all(s == "in-sync" for s in states.values())
    return mine, every


def wait(binary, pconf, sconf, secs, outdir, sources):
    want = sets_of(pconf, sources)
    if not want:
        print("status_claim: no [path] set of %s holds %s" %
              (pconf, " ".join(sources)), file=sys.stderr)
        return 1
    end = time.monotonic() + secs
    p = s = None
    pwhy = swhy = ""
    while True:
        p, pwhy = status(binary, pconf)
        mine, every = primary_says(p, want)
        if mine and sconf != "-" and every:
            s, swhy = status(binary, sconf)
            ready = s is not None and s.get("daemon") == "running" and \
                not stale(s) and \
                (s.get("promote_ready") or {}).get("ready") is True
        else:
            ready = sconf == "-" or (mine and not every)
        if mine and ready:
            break
        if time.monotonic() >= end:
            print("status never claimed it in %g s (sets %s):" %
                  (secs, " ".join(sorted(want))), file=sys.stderr)
            print("  primary: " + (show(p) if p else pwhy), file=sys.stderr)
            if sconf != "-":
                if s is None:
                    s, swhy = status(binary, sconf)
                print("  standby: " + (show(s) if s else swhy),
                      file=sys.stderr)
            return 1
        time.sleep(0.1)
    with open(os.path.join(outdir, "primary.json"), "w") as f:
        json.dump(p, f)
    with open(os.path.join(outdir, "standby.json"), "w") as f:
        json.dump(s, f)
    return 0


def applied(name, t0):
    with open(name) as f:
        d = json.load(f)
    la = (d.get("lag") or {}).get("last_applied")
    when = None
    if la is not None:
        when = datetime.datetime.strptime(la, "%Y-%m-%dT%H:%M:%S.%fZ")
        when = when.replace(tzinfo=datetime.timezone.utc).timestamp()
    # last_applied is printed in ms: allow its rounding.
    if d.get("daemon") == "running" and when is not None and \
            when >= t0 - 0.002 and \
            all(p.get("state") != "error" for p in d.get("paths") or []):
        print(la)
        return 0
    print("status: " + show(d), file=sys.stderr)
    return 1


def main(argv):
    if len(argv) >= 7 and argv[1] == "wait":
        return wait(argv[2], argv[3], argv[4], float(argv[5]), argv[6],
                    argv[7:])
    if len(argv) >= 2 and argv[1] == "show":
        for name in argv[2:]:
            try:
                with open(name) as f:
                    print(show(json.load(f)))
            except (OSError, ValueError) as e:
                print("%s: %s" % (name, e))
        return 0
    if len(argv) == 4 and argv[1] == "applied":
        return applied(argv[2], float(argv[3]))
    if len(argv) == 4 and argv[1] == "expect":
        try:
            with open(argv[2]) as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            print("%s: %s" % (argv[2], e), file=sys.stderr)
            return 1
        if "error" in d and "paths" not in d:
            print("status: %s" % d["error"], file=sys.stderr)
            return 3
        try:
            if eval(argv[3], {}, {"d": d}):
                print(brief(d))
                return 0
            why = ""
        except (KeyError, IndexError, TypeError) as e:
            why = " (%s: %s)" % (type(e).__name__, e)
        print("status: " + show(d) + why, file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

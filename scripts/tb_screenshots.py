"""Screenshots of TensorBoard's dashboards, as a user sees them in a browser.

    uv run python scripts/tb_screenshots.py --sweep --out /tmp/shots     # a 4-job sweep, then its dashboards
    uv run python scripts/tb_screenshots.py --logdir multirun/2026-11-22/10-00-00
    uv run python scripts/tb_screenshots.py --sweep --logdir /tmp/sw -o trainer.epochs=1   # sweep into /tmp/sw

What it does, in order:

1. With --sweep: runs `python -m dlexp.train -m model=mlp,cnn optimizer.lr=1e-3,1e-2
   trainer.epochs=2 hydra.sweep.dir=DIR` (digits, the default data set; well under a minute on
   2 cores) from the repository root, into --logdir or a fresh temp dir (kept, and printed),
   and shows DIR/tb, where the jobs' runs are, named by their swept values.
   Its output goes to DIR/sweep.log. -o KEY=VALUE adds an override or replaces one of these.
2. Starts `tensorboard --logdir DIR --host 127.0.0.1 --port <free port>` and waits until it
   answers and lists every run (every dir under DIR that holds an events file).
3. Drives headless Chromium over the DevTools protocol (--remote-debugging-pipe: JSON over two
   file descriptors, so only the standard library is needed, no websocket package) and saves
   one PNG per view into --out (default DIR/screenshots): Time Series; Time Series with every
   tag group collapsed (their order and card counts at a glance); Time Series filtered by
   --tag-filter (default: loss); Scalars; HParams as table, parallel coordinates and scatter
   plot matrix (the tabs are clicked); Images; Custom Scalars; Text.
   A view counts as rendered once its DOM (shadow roots included) stops changing.
4. Prints the PNG paths and stops TensorBoard and Chromium, also on error or Ctrl-C.

Needs a Chromium on PATH (Debian: `apt-get install chromium`; --chromium PATH for another).
Not part of the test suite: a tool to look at what the loggers write.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SWEEP_OVERRIDES = ["model=mlp,cnn", "optimizer.lr=1e-3,1e-2", "trainer.epochs=2"]

# JavaScript run in the page. TensorBoard's older dashboards (Scalars, HParams, Images, Text) are
# Polymer elements whose content sits in shadow roots, which document.querySelectorAll and
# document.body.innerText do not see, so every lookup walks the shadow roots too.
JS_DEEP = r"""
const deep = () => { const out = []; const stack = [document];
  while (stack.length) { const n = stack.pop();
    if (n.nodeType === 1) out.push(n);
    if (n.shadowRoot) stack.push(n.shadowRoot);
    for (const c of (n.children || [])) stack.push(c); }
  return out; };
"""


def js(body: str) -> str:
    """A self-contained JS expression: body runs with deep() in scope and returns a value.

    Wrapped in a function so that repeated evaluations in one page do not redeclare globals.
    """
    return f"(() => {{ {JS_DEEP} {body} }})()"


# A fingerprint of what is on screen: it stops changing once the dashboard has fetched and drawn.
JS_SIGNATURE = js(r"""
  const els = deep(); let text = 0, imgs = 0;
  for (const e of els) { if (e.shadowRoot) text += e.shadowRoot.textContent.length;
    if (e.tagName === 'IMG' && e.complete) imgs++; }
  const body = document.body ? document.body.textContent.length : -1;
  return [els.length, text + body, imgs].join('/');
""")
# TensorBoard's own "nothing to show" notes, to warn about a view that rendered but is empty.
JS_EMPTY_NOTE = js(r"""
  for (const e of deep()) {
    const t = (e.childElementCount === 0 && e.offsetParent !== null && e.textContent || '').trim();
    if (/^No .*(data|dashboards|layout)/i.test(t)) return t.slice(0, 120); }
  return '';
""")


def js_click_tab(label: str) -> str:
    """JS that clicks the HParams paper-tab whose label matches (the view switch has no URL)."""
    return js(
        "const t = deep().find(e => e.tagName === 'PAPER-TAB' && "
        f"e.textContent.trim().toLowerCase() === {json.dumps(label.lower())}); "
        "if (!t) return false; t.click(); return true;"
    )


# Time Series groups are Angular buttons; a collapsed group shows only its name and card count,
# so collapsing all of them lists every tag group in display order on one screen. Only the first
# two start expanded; the icon (expand_less) tells which. Returns "name (N cards)" per group.
JS_COLLAPSE_GROUPS = js(r"""
  const bars = deep().filter(e => e.tagName === 'BUTTON' && e.classList.contains('group-toolbar'))
    .sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top);
  const names = bars.map(b => b.querySelector('.group-title-wrapper').textContent.trim()
    .replace(/^(.*?)(\d+ cards?)$/, '$1 ($2)'));
  for (const b of bars) { if (b.querySelector('[svgicon="expand_less_24px"]')) b.click(); }
  return names;
""")


@dataclass(frozen=True)
class View:
    """One screenshot: a URL tail (query and #dashboard), optional JS to run first, a viewport width."""

    name: str
    url_tail: str  # after the server's address: an optional ?query, then #dashboard
    action: str | None = None  # JS that must return a truthy value, else the shot is skipped
    width: int | None = None  # None: --size's width


def views(tag_filter: str) -> list[View]:
    """The views to capture, in order; tag_filter feeds one Time Series view through its URL.

    A fresh Time Series shows only its first tag groups (the rest start collapsed), so the groups
    view and the filtered view (e.g. every */loss curve across train/val/test) show what a user
    would click or type to find.
    """
    query = "?" + urllib.parse.urlencode({"tagFilter": tag_filter}) if tag_filter else ""
    hparams = 2400  # the table has a column per hparam and per shown metric: wider than 1600 px
    return [
        View("timeseries", "#timeseries"),
        View("timeseries_groups", "#timeseries", JS_COLLAPSE_GROUPS),
        *([View("timeseries_filtered", f"{query}#timeseries")] if query else []),
        View("scalars", "#scalars"),
        View("hparams", "#hparams", width=hparams),
        View("hparams_parallel", "#hparams", js_click_tab("Parallel Coordinates View"), width=hparams),
        View("hparams_scatter", "#hparams", js_click_tab("Scatter Plot Matrix View"), width=hparams),
        View("images", "#images"),
        View("custom_scalars", "#custom_scalars"),
        View("text", "#text"),
    ]


def free_port() -> int:
    """An unused localhost port, so several copies (or a user's own TensorBoard) do not clash."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def event_dirs(logdir: Path) -> set[Path]:
    """The dirs TensorBoard will show as runs: each one holding an events file."""
    return {p.parent for p in logdir.rglob("events.out.tfevents.*")}


def run_sweep(target: Path, extra: list[str]) -> None:
    """Train the 4-job sweep into target, from the repo root (where conf/ and Hydra's searchpath are).

    An extra override for a key already set replaces it (Hydra refuses a key given twice).

    sys.executable is the interpreter `uv run` chose, so no second `uv run` is nested.
    """
    target.mkdir(parents=True, exist_ok=True)
    overrides = {o.split("=", 1)[0]: o for o in [*SWEEP_OVERRIDES, f"hydra.sweep.dir={target}", *extra]}
    cmd = [sys.executable, "-m", "dlexp.train", "-m", *overrides.values()]
    log = target / "sweep.log"
    print(f"sweep: {' '.join(cmd[1:])}  (log: {log})", flush=True)
    t0 = time.monotonic()
    with log.open("w") as f:
        rc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, check=False).returncode
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-25:]
        raise RuntimeError(f"the sweep failed (exit {rc}); last lines of {log}:\n" + "\n".join(tail))
    print(f"sweep: done in {time.monotonic() - t0:.0f}s", flush=True)


def http_json(url: str, timeout: float = 5.0) -> Any:
    """GET a TensorBoard data endpoint; raises while the server is not up yet."""
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (localhost only)
        return json.loads(r.read())


def stop(proc: subprocess.Popen[bytes] | None, name: str) -> None:
    """Terminate a child started in its own session, then kill it if it lingers.

    The whole process group goes: Chromium's renderer and GPU helpers, TensorBoard's data server.
    """
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            print(f"{name} did not exit on {sig.name}", file=sys.stderr)


@contextmanager
def tensorboard(logdir: Path, timeout: float) -> Iterator[str]:
    """Serve logdir on 127.0.0.1 until the block ends; yields the base URL once all runs are listed.

    Waiting for /data/runs to hold every event dir matters: the first reload is asynchronous, and a
    page opened earlier shows "no data" or a partial run list.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(prefix="tensorboard-", suffix=".log", delete=False)  # noqa: SIM115
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1"]
    proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=log, stderr=log, start_new_session=True)
    try:
        want = len(event_dirs(logdir))
        deadline = time.monotonic() + timeout
        runs: list[str] = []
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"tensorboard exited ({proc.returncode}); see {log.name}")
            try:
                runs = http_json(f"{base}/data/runs")
                plugins = http_json(f"{base}/data/plugins_listing")
                if runs and len(runs) >= want and (want == 0 or plugins.get("scalars", {}).get("enabled")):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"tensorboard at {base} listed {len(runs)} of {want} runs after {timeout:.0f}s")
            time.sleep(0.5)
        print(f"tensorboard: {base}  ({len(runs)} runs, log {log.name})", flush=True)
        yield base
    finally:
        stop(proc, "tensorboard")
        log.close()


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4 in the browser).

    --remote-debugging-pipe speaks NUL-terminated JSON, so no websocket client is needed; a page
    can be clicked and waited on, which --screenshot with a virtual time budget cannot do.
    """

    def __init__(self, binary: str, width: int, height: int, timeout: float) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="tb-screenshots-chromium-")
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # above 9, so bash's "3<&N 4>&M" can never mean the fd it is about to replace
        child_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        child_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)
        flags = [
            "--headless",
            "--no-sandbox",  # required as root; harmless otherwise for a localhost page
            "--disable-gpu",
            "--enable-unsafe-swiftshader",  # software WebGL for Time Series charts (opt-in since M13x)
            "--hide-scrollbars",
            "--no-first-run",
            "--mute-audio",
            f"--window-size={width},{height}",
            f"--user-data-dir={self.profile}",
            "--remote-debugging-pipe",
        ]
        shell = f'exec "$0" "$@" 3<&{child_r} 4>&{child_w} {child_r}<&- {child_w}>&-'
        self.log = tempfile.NamedTemporaryFile(prefix="chromium-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            ["bash", "-c", shell, binary, *flags, "about:blank"],
            pass_fds=(child_r, child_w),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        os.close(child_r)
        os.close(child_w)
        self.wfd = to_browser_w
        self.rfd = from_browser_r
        self.buf = b""
        self.next_id = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = False) -> dict[str, Any]:
        """Send one command and wait for its reply (events in between are read and dropped)."""
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self.wfd, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.rfd], [], [], left)[0]:
                    raise TimeoutError(f"chromium did not answer {method} in {self.timeout:.0f}s; see {self.log.name}")
                chunk = os.read(self.rfd, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the DevTools pipe; see {self.log.name}")
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        """The value of a JS expression in the page; a JS exception is raised here, not hidden."""
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in res:
            detail = res["exceptionDetails"].get("exception", {}).get("description") or res["exceptionDetails"]
            raise RuntimeError(f"JS failed in the page: {detail}")
        return res.get("result", {}).get("value")

    def open(self, url: str, width: int, height: int) -> None:
        """Load url in a fresh document: via about:blank, since a hash change alone keeps the app's state."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )
        self.call("Page.navigate", {"url": "about:blank"}, session=True)
        self.call("Page.navigate", {"url": url}, session=True)

    def settle(self, least: float, most: float, quiet: float = 2.0) -> bool:
        """Wait until the page's fingerprint has not changed for `quiet` seconds (after `least`).

        TensorBoard fetches runs, then tags, then data, each step redrawing; a fixed sleep is
        either slow or flaky. False when it was still changing after `most` seconds.
        """
        start = time.monotonic()
        last, since = None, start
        while True:
            now = time.monotonic()
            sig = self.evaluate(JS_SIGNATURE)
            if sig != last:
                last, since = sig, now
            elif now - start >= least and now - since >= quiet:
                return True
            if now - start >= most:
                return False
            time.sleep(0.25)

    def screenshot(self, path: Path) -> None:
        """Save the viewport as PNG."""
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        """Close the browser and remove its throwaway profile."""
        try:
            os.close(self.wfd)  # EOF on fd 3: Chromium shuts down by itself
        except OSError:
            pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                stop(self.proc, "chromium")
        os.close(self.rfd)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def capture(
    base: str, out: Path, browser: Chromium, todo: list[View], size: tuple[int, int], most: float
) -> list[Path]:
    """One PNG per view; a view whose click target is missing is skipped with a note."""
    out.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []
    for view in todo:
        width, height = view.width or size[0], size[1]
        browser.open(f"{base}/{view.url_tail}", width, height)
        calm = browser.settle(least=2.0, most=most)
        if view.action is not None:
            result = browser.evaluate(view.action)
            if not result:
                print(f"  {view.name}: skipped (nothing to click on this page)", file=sys.stderr)
                continue
            if isinstance(result, list):
                print(f"  {view.name}: {', '.join(map(str, result))}", flush=True)
            calm = browser.settle(least=1.0, most=most)
        path = out / f"{view.name}.png"
        browser.screenshot(path)
        shots.append(path)
        note = browser.evaluate(JS_EMPTY_NOTE) or ""
        extra = ("  (still changing at the timeout)" if not calm else "") + (f"  [page says: {note}]" if note else "")
        print(f"{path}{extra}", flush=True)
    return shots


def find_chromium(given: str | None) -> str:
    """The browser binary: --chromium, else the first of the usual names on PATH."""
    for name in [given] if given else ["chromium", "chromium-browser", "google-chrome", "chrome"]:
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError("no Chromium found: apt-get install chromium, or pass --chromium PATH")


def parse_size(text: str) -> tuple[int, int]:
    """WxH -> (W, H), for argparse."""
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def _raise_exit(signum: int, _frame: object) -> None:
    """SIGTERM as SystemExit, so the finally blocks stop TensorBoard and Chromium."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--logdir", type=Path, help="dir to show (with --sweep: where the sweep goes; default a temp dir)")
    ap.add_argument("--sweep", action="store_true", help="first run the 4-job mlp/cnn x 2 lr sweep on digits")
    ap.add_argument(
        "-o", "--override", action="append", default=[], metavar="KEY=VALUE", help="extra sweep override (repeatable)"
    )
    ap.add_argument("--out", type=Path, help="where the PNGs go (default: <logdir>/screenshots)")
    ap.add_argument("--size", type=parse_size, default=(1600, 2000), help="viewport WxH (default 1600x2000)")
    ap.add_argument(
        "--tag-filter", default="loss", help="regex for the extra Time Series view ('': none; default loss)"
    )
    ap.add_argument("--chromium", help="browser binary (default: chromium on PATH)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for TensorBoard or a page (60)")
    args = ap.parse_args(argv)

    signal.signal(signal.SIGTERM, _raise_exit)
    if args.sweep:
        logdir = args.logdir or Path(tempfile.mkdtemp(prefix="tb-screenshots-sweep-"))
        run_sweep(logdir.resolve(), args.override)
        logdir = logdir / "tb"
    elif args.logdir is None:
        ap.error("give --logdir DIR, or --sweep")
    else:
        logdir = args.logdir
    logdir = logdir.resolve()
    if not logdir.is_dir():
        ap.error(f"--logdir {logdir} is not a directory")
    if not event_dirs(logdir):
        print(f"tb_screenshots: no TensorBoard event files under {logdir}", file=sys.stderr)
        return 2
    binary = find_chromium(args.chromium)
    out = (args.out or logdir / "screenshots").resolve()

    with tensorboard(logdir, args.timeout) as base:
        browser = Chromium(binary, *args.size, timeout=args.timeout)
        try:
            shots = capture(base, out, browser, views(args.tag_filter), args.size, most=args.timeout)
        finally:
            browser.close()
    print(f"{len(shots)} screenshots of {logdir} in {out}")
    return 0 if shots else 1


if __name__ == "__main__":
    sys.exit(main())

"""The atlas as a person sees it: headless Chromium opens it from file:// and clicks through.

Overview -> a layer -> a unit -> classes: every image and sprite sheet loads, the console stays
clean, and no request leaves file://. Screenshots go to $CONVLENS_SCREENSHOTS (default: a temp
folder, printed). Run alone to screenshot any atlas:

    python tests/test_atlas_browser.py ATLAS_DIR SHOTS_DIR
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WIDTH = 1400


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'selenium>=4.20', the dev extra has it)"
    if not CHROMIUM:
        return "chromium is not installed (Debian: apt-get install chromium)"
    if not CHROMEDRIVER:
        return "chromedriver is not installed (Debian: apt-get install chromium-driver)"
    return None


def start_browser(profile: Path):
    """Headless Chromium, sandbox and network extras off, console and network logs on."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM  # type: ignore[assignment]
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},1000",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def settle(driver, timeout: float = 20.0) -> dict:
    """Scroll through the page (lazy loading), load every sheet, wait until all images settle."""
    height = driver.execute_script("return document.body.scrollHeight")
    for y in range(0, int(height) + 1000, 900):
        driver.execute_script(f"window.scrollTo(0, {y})")
    driver.execute_script(
        "document.querySelectorAll('details').forEach(d => d.open = true);"
        "document.querySelectorAll('img').forEach(i => i.loading = 'eager');"
        "if (window.atlasLoadAll) atlasLoadAll();"
    )
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        state = driver.execute_script(
            "var imgs = Array.from(document.images);"
            "var sheets = window.atlasSprites || {};"
            "return {images: imgs.length,"
            " pending: imgs.filter(i => !i.complete).map(i => i.src),"
            " broken: imgs.filter(i => i.complete && i.naturalWidth === 0).map(i => i.src),"
            " sheets: Object.keys(sheets).length,"
            " sheetsPending: Object.keys(sheets).filter(k => sheets[k] === 'loading'),"
            " sheetsBroken: Object.keys(sheets).filter(k => sheets[k] === 'error'),"
            " tiles: document.querySelectorAll('.tile[data-src]').length,"
            " bareTiles: document.querySelectorAll('.tile[data-src]:not(.loaded)').length};"
        )
        if not state["pending"] and not state["sheetsPending"]:
            break
        time.sleep(0.1)
    driver.execute_script("window.scrollTo(0, 0)")
    return state


def screenshot(driver, path: Path, max_height: int = 7000) -> Path:
    """A full-page PNG (up to ``max_height`` px tall)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, min(int(height) + 20, max_height))
    time.sleep(0.2)
    driver.save_screenshot(str(path))
    driver.set_window_size(WIDTH, 1000)
    return path


def requests_and_errors(driver) -> tuple[list[str], list[str], int]:
    """Requests that would leave the machine or the atlas (network log), and console errors.

    A request counts when it goes to the network (http, https, ws, ftp) from anywhere, or to
    anything but file:// and data: from an atlas page; the browser's own chrome:// pages (the
    start tab) are not the atlas's doing.
    """
    leaving, seen = [], 0
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.requestWillBeSent":
            continue
        url = message["params"]["request"]["url"]
        document = message["params"].get("documentURL", "")
        network = url.split(":", 1)[0] in ("http", "https", "ws", "wss", "ftp")
        from_atlas = document.startswith("file://")
        seen += from_atlas
        if network or (from_atlas and not url.startswith(("file://", "data:"))):
            leaving.append(url)
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return leaving, errors, seen


def tour(atlas: Path, shots: Path) -> list[dict]:
    """Overview -> first layer -> its first unit -> classes; check and screenshot each page."""
    from selenium.webdriver.common.by import By

    shots.mkdir(parents=True, exist_ok=True)
    visited: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="convlens-chromium-") as profile:
        driver = start_browser(Path(profile))
        try:

            def visit(name: str) -> dict:
                state = settle(driver)
                shot = screenshot(driver, shots / f"{len(visited) + 1:02d}-{name}.png")
                leaving, errors, seen = requests_and_errors(driver)
                record = {"name": name, "url": driver.current_url, "state": state,
                          "urls": leaving, "requests": seen, "errors": errors,
                          "screenshot": str(shot)}  # fmt: skip
                visited.append(record)
                return record

            driver.get((atlas / "index.html").resolve().as_uri())
            visit("overview")
            driver.find_element(By.CSS_SELECTOR, "table.data a[href^='layer-']").click()
            layer = visit("layer")
            for key in ("r", "rmean", "match", "mean"):  # the sort buttons reorder the unit rows
                buttons = driver.find_elements(By.CSS_SELECTOR, f"button[data-sort='{key}']")
                if buttons:
                    buttons[0].click()
                    layer[f"sorted_{key}"] = driver.execute_script(
                        f"return Array.from(document.querySelectorAll('.unit-row'))"
                        f".map(r => parseFloat(r.dataset.{key}))"
                    )
            driver.find_element(By.CSS_SELECTOR, "button[data-sort='index']").click()
            driver.find_element(By.CSS_SELECTOR, "a.unit-row").click()
            visit("unit")
            driver.find_element(By.CSS_SELECTOR, "nav a[href$='classes.html']").click()
            visit("classes")
            evolution = driver.find_elements(By.CSS_SELECTOR, "nav a[href$='evolution.html']")
            if evolution:
                evolution[0].click()
                visit("evolution")
        finally:
            driver.quit()
    return visited


# --- the test ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_atlas(kaggle4_ckpt: Path, mnist_small, tmp_path_factory: pytest.TempPathFactory):
    import convlens as cl
    from convlens.atlas import AtlasOptions, build_atlas

    out = tmp_path_factory.mktemp("browser") / "atlas"
    options = AtlasOptions.preset(
        quick=True, max_units=4, max_dense_units=2, samples_per_class=1, prototypes=False,
        evolution_units=2, evolution_layers=1, layers=("conv2d_1", "conv2d_4", "dense_2"),
    )  # fmt: skip
    build_atlas(cl.load(kaggle4_ckpt), out, data=mnist_small, options=options, progress=False)
    return out


@pytest.mark.slow
def test_atlas_in_headless_chromium(small_atlas: Path, tmp_path: Path) -> None:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    shots = Path(os.environ.get("CONVLENS_SCREENSHOTS") or tmp_path / "screenshots")
    visited = tour(small_atlas, shots)
    print(f"\natlas screenshots in {shots}")
    names = [v["name"] for v in visited]
    assert names[:4] == ["overview", "layer", "unit", "classes"]
    assert visited[1]["url"].endswith("layer-conv2d_1.html")
    assert "/units/conv2d_1-" in visited[2]["url"]
    for page in visited:
        state = page["state"]
        assert not state["pending"], f"{page['name']}: images still loading {state['pending']}"
        assert not state["broken"], f"{page['name']}: images failed to load {state['broken']}"
        assert not state["sheetsPending"] and not state["sheetsBroken"], (page["name"], state)
        assert state["bareTiles"] == 0, f"{page['name']}: {state['bareTiles']} tiles without image"
        assert state["images"] + state["tiles"] > 0, f"{page['name']} shows no pictures"
        assert not page["errors"], f"{page['name']}: console errors {page['errors']}"
        assert not page["urls"], f"{page['name']}: requests left file:// {page['urls']}"
        assert page["requests"] > 0, "the network log saw no request: the check would be blind"
        assert Path(page["screenshot"]).stat().st_size > 10_000
    assert visited[1]["state"]["tiles"] >= 4 * 9, "the layer page lost its example tiles"
    for key in ("r", "rmean", "match", "mean"):
        values = [v for v in visited[1][f"sorted_{key}"] if v == v]  # NaN (dead) sorts last
        assert len(values) >= 2 and values == sorted(values, reverse=True), (key, values)


if __name__ == "__main__":
    if _missing():
        sys.exit(_missing())
    pages = tour(Path(sys.argv[1]), Path(sys.argv[2]))
    for p in pages:
        bad = p["errors"] + p["state"]["broken"] + p["state"]["sheetsBroken"] + p["urls"]
        print(
            p["name"],
            p["url"],
            "tiles",
            p["state"]["tiles"],
            "images",
            p["state"]["images"],
            "requests",
            p["requests"],
            "problems",
            bad or "none",
        )
    print("screenshots in", sys.argv[2])

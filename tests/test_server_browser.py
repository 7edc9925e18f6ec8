"""The live app as a person uses it: headless Chromium on ``convlens serve``, real pointer events.

Draws a stroke (the page updates while the button is still down), clicks a unit (its panel
loads its kernel, feature visualization and examples, and its receptive field is drawn on the
canvas), uploads a PNG (converted, with a note), tries a too-large file and an image over the
pixel cap (both refused with a visible message), and checks that no request leaves 127.0.0.1 and
the console stays clean. Screenshots go to $CONVLENS_SCREENSHOTS (default: a temp folder).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image
from test_atlas_browser import _missing, start_browser


def wait(driver, script: str, timeout: float = 30.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or script}")


def shot(driver, folder: Path, name: str) -> Path:
    path = folder / name
    driver.save_screenshot(str(path))
    return path


@pytest.fixture()
def served(kaggle4_ckpt: Path):
    """``convlens serve CKPT`` in a subprocess (the real command), its address, then stopped."""
    cmd = [
        sys.executable,
        "-u",
        "-c",
        "from convlens.cli import main; main()",
        "serve",
        str(kaggle4_ckpt),
        "--no-browser",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("convlens live app: http://127.0.0.1:"), line
        yield line.split()[3]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def network(driver) -> tuple[list[str], int]:
    """URLs of requests and sockets that went anywhere but 127.0.0.1 (or data:/blob:)."""
    leaving, seen = [], 0
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") not in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            continue
        params = message["params"]
        url = params["request"]["url"] if "request" in params else params["url"]
        seen += 1
        if url.startswith(("data:", "blob:", "about:", "chrome:")):
            continue
        if urlsplit(url).hostname != "127.0.0.1":
            leaving.append(url)
    return leaving, seen


@pytest.mark.slow
def test_live_app_in_headless_chromium(served: str, kaggle4_lens, tmp_path: Path) -> None:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    shots = Path(os.environ.get("CONVLENS_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    digit = np.clip(np.rint(kaggle4_lens_digit(kaggle4_lens) * 255), 0, 255).astype(np.uint8)
    upload = tmp_path / "my digit.png"
    big = Image.fromarray(255 - digit).resize((112, 140), Image.Resampling.BILINEAR).convert("RGB")
    big.save(upload)  # dark digit on white, RGB, 112x140: grayscale + inverted + resized
    too_big = tmp_path / "huge.png"
    too_big.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(5 * 2**20 + 100))
    too_many = tmp_path / "wide.png"
    Image.new("L", (5000, 4000)).save(too_many)

    with tempfile.TemporaryDirectory(prefix="convlens-chromium-") as profile:
        driver = start_browser(Path(profile))
        try:
            driver.set_window_size(1366, 768)
            driver.get(served)
            wait(driver, "return state.updates > 0 && state.curves.a", what="the first update")
            shot(driver, shots, "01-start-1366x768.png")
            layout = driver.execute_script(
                "return {font: parseFloat(getComputedStyle(document.body).fontSize),"
                " overflow: document.documentElement.scrollWidth - innerWidth}"
            )
            assert layout["font"] >= 13 and layout["overflow"] <= 0, layout

            # clear, then draw a 7 with real pointer events; updates arrive mid-stroke
            driver.find_element(By.TAG_NAME, "body").send_keys("c")
            wait(
                driver, "return Array.from(draw.pixels).every(v => v === 0)", what="a clear canvas"
            )
            blank = wait(
                driver,
                "var u = state.latest.a; return u && Array.from(draw.pixels).every(v => v === 0)"
                " && state.inflight === null && Array.from(u.arrays.probabilities.data)",
            )
            canvas = driver.find_element(By.ID, "draw")
            side = canvas.size["width"]
            before = driver.execute_script("return state.updates")
            act = ActionChains(driver, duration=20)
            act.move_to_element_with_offset(
                canvas, int(-0.25 * side), int(-0.3 * side)
            ).click_and_hold()
            for _ in range(8):
                act.move_by_offset(int(0.06 * side), 0)
            act.perform()
            wait(driver, f"return state.updates > {before}", what="an update while drawing")
            assert driver.execute_script("return state.drawing") is True  # button still down
            act = ActionChains(driver, duration=20)
            for _ in range(10):
                act.move_by_offset(int(-0.035 * side), int(0.06 * side))
            act.release().perform()
            wait(driver, "return !state.drawing && state.inflight === null && !state.dirty")
            time.sleep(0.3)
            drawn = driver.execute_script(
                "return Array.from(state.latest.a.arrays.probabilities.data)"
            )
            ink = driver.execute_script(
                "return Array.from(draw.pixels).filter(v => v > 128).length"
            )
            assert ink > 20 and not np.allclose(drawn, blank)
            assert (
                driver.find_element(By.CSS_SELECTOR, ".verdict .big").text
                in kaggle4_lens.class_names
            )
            painted = driver.execute_script(
                "var g = document.querySelector('canvas.grid[data-layer=conv2d_1]');"
                "var d = g.getContext('2d').getImageData(0, 0, g.width, g.height).data, n = 0;"
                "for (var i = 0; i < d.length; i += 4) if (d[i + 3] > 0) n++;"
                " return n / (d.length / 4)"
            )
            assert painted > 0.5, painted
            shot(driver, shots, "02-drawn.png")
            driver.find_element(By.TAG_NAME, "body").send_keys("z")  # undo: the stroke goes
            wait(driver, "return Array.from(draw.pixels).every(v => v === 0)", what="undo")
            driver.find_element(By.ID, "undo").click()  # and again, to the cleared canvas's past
            wait(driver, "return Array.from(draw.pixels).some(v => v > 0)", what="second undo")
            driver.find_element(By.TAG_NAME, "body").send_keys("c")
            act = ActionChains(driver, duration=20)
            act.move_to_element_with_offset(canvas, 0, int(-0.3 * side)).click_and_hold()
            for _ in range(10):
                act.move_by_offset(0, int(0.06 * side))
            act.release().perform()
            wait(driver, "return !state.drawing && state.inflight === null && !state.dirty")

            # click the first channel of conv2d_2: the panel loads its pictures
            grid = driver.find_element(By.CSS_SELECTOR, "canvas.grid[data-layer=conv2d_2]")
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", grid)
            for attempt in range(2):  # a grid re-laid out under the pointer gets one more try
                time.sleep(0.3)
                ActionChains(driver).move_to_element_with_offset(
                    grid, -grid.size["width"] // 2 + 8, -grid.size["height"] // 2 + 8
                ).click().perform()
                opened = "return !document.getElementById('panel').hidden"
                try:
                    wait(driver, opened, timeout=10, what="the panel")
                    break
                except AssertionError:
                    if attempt:
                        raise
            assert (
                "unit=conv2d_2%3A0" in driver.current_url or "unit=conv2d_2:0" in driver.current_url
            )
            loaded = wait(
                driver,
                "var c = document.querySelectorAll('#panel canvas.picture');"
                "var ok = Array.from(c).filter(x => x.dataset.loaded === '1').length;"
                "return c.length >= 20 && ok === c.length &&"
                " !document.querySelector('#panel .loading') && ok",
                timeout=60,
                what="the unit's kernel, render and examples",
            )
            assert loaded >= 20  # kernel + render + 9 examples + 9 crops
            assert "r_peak = " in driver.find_element(By.ID, "panel").text  # and r_mean, match
            red = driver.execute_script(
                "var c = document.getElementById('rf-overlay');"
                "var d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, n = 0;"
                "for (var i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 3] > 0) n++;"
                " return n"
            )
            assert red > 0, "no receptive field drawn on the canvas"
            shot(driver, shots, "03-unit-panel.png")

            # upload a PNG: converted like the CLI's --image, with a visible note
            driver.find_element(By.ID, "upload").send_keys(str(upload))
            note = wait(
                driver,
                "var n = document.getElementById('note');"
                "return !n.hidden && n.textContent.includes('my digit.png') && n.textContent",
            )
            assert "inverted" in note and "resized 112x140 to 28x28" in note, note
            deadline, diff = time.monotonic() + 10, 255.0
            while diff >= 25 and time.monotonic() < deadline:  # the canvas redraws next frame
                got = driver.execute_script("return Array.from(draw.pixels)")
                diff = float(np.abs(np.array(got, dtype=np.int16) - digit.reshape(-1)).mean())
                time.sleep(0.1)
            assert diff < 25, diff  # the uploaded digit is what the model now sees
            shot(driver, shots, "04-upload.png")

            # too large (bytes: refused in the page) and too many pixels (refused by the server)
            driver.find_element(By.ID, "upload").send_keys(str(too_big))
            text = wait(
                driver,
                "var e = document.getElementById('error');"
                "return !e.hidden && e.textContent.includes('huge.png') && e.textContent",
            )
            assert "over the 5 MB limit" in text
            on_screen = driver.execute_script(
                "var r = document.getElementById('error').getBoundingClientRect();"
                "return r.top >= 0 && r.bottom <= innerHeight && r.width > 0"
            )
            assert on_screen, "the refusal is not visible without scrolling"
            shot(driver, shots, "05-too-large.png")
            driver.find_element(By.ID, "upload").send_keys(str(too_many))
            text = wait(
                driver,
                "var e = document.getElementById('error');"
                "return !e.hidden && e.textContent.includes('wide.png') && e.textContent",
            )
            assert "megapixels" in text

            # two screen sizes
            driver.set_window_size(3840, 2160)
            time.sleep(0.8)
            shot(driver, shots, "06-4k.png")
            font4k = driver.execute_script(
                "return parseFloat(getComputedStyle(document.body).fontSize)"
            )
            assert font4k > layout["font"]

            leaving, seen = network(driver)
            assert seen > 5 and not leaving, leaving
            severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            expected = [
                e for e in severe if "/api/upload" in e["message"] and "413" in e["message"]
            ]
            assert len(expected) <= 1  # the deliberately refused 20-megapixel upload
            assert not [e for e in severe if e not in expected], severe
        except Exception:
            shot(driver, shots, "failure.png")  # what the page showed when a check failed
            raise
        finally:
            driver.quit()
    print(f"\nlive app screenshots in {shots}")


def kaggle4_lens_digit(lens) -> np.ndarray:
    from convlens.data.for_model import dataset_for

    return dataset_for(lens).x_val[1, 0].numpy()

"""The live app's endpoints and socket messages, in process (Starlette's TestClient).

Every route and message is exercised with good and bad input; after each bad one the same
server (and the same socket) must still answer. No network: the client talks to the app object.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
from starlette.testclient import TestClient

from convlens.server.protocol import frame, read_array, unpack

BASE = "http://127.0.0.1"
WS = "ws://127.0.0.1/ws"


def infer(**fields) -> dict:
    header = {
        "type": "infer",
        "id": 1,
        "models": ["a"],
        "method": "gradient",
        "dtype": "u8",
        "shape": [1, 28, 28],
    }
    header.update(fields)
    return header


def digit(lens, index: int = 0) -> np.ndarray:
    from convlens.data.for_model import dataset_for

    x = dataset_for(lens).x_val[index].numpy()
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def receive(ws) -> tuple[str, dict, memoryview | None]:
    message = ws.receive()
    if message.get("bytes") is not None:
        header, payload = unpack(message["bytes"])
        return header["type"], header, payload
    data = json.loads(message["text"])
    return data["type"], data, None


def receive_until(ws, kind: str, limit: int = 6) -> tuple[dict, memoryview | None]:
    for _ in range(limit):
        got, header, payload = receive(ws)
        if got == kind:
            return header, payload
    raise AssertionError(f"no {kind!r} message")


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def tiny_atlas(kaggle4_ckpt: Path, mnist_small, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import convlens as cl
    from convlens.atlas import AtlasOptions, build_atlas

    out = tmp_path_factory.mktemp("serve-atlas") / "atlas"
    options = AtlasOptions.preset(
        quick=True,
        max_units=2,
        max_dense_units=1,
        samples_per_class=1,
        prototypes=False,
        layers=("conv2d_1",),
        render_steps=20,
    )
    stages = ["overview", "kernels", "render", "examples"]
    build_atlas(
        cl.load(kaggle4_ckpt), out, data=mnist_small, options=options, stages=stages, progress=False
    )
    return out


@pytest.fixture(scope="module")
def client(kaggle4_lens):
    from convlens.server import create_app

    with TestClient(create_app(kaggle4_lens), base_url=BASE) as c:
        yield c


@pytest.fixture(scope="module")
def atlas_client(kaggle4_lens, tiny_atlas: Path):
    from convlens.server import create_app

    with TestClient(create_app(kaggle4_lens, atlases=[tiny_atlas]), base_url=BASE) as c:
        yield c


# --- pages and config -----------------------------------------------------------------------
def test_page_and_static_files_are_served_from_the_package(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="draw"' in page.text
    for name in ("app.js", "app.css"):
        assert client.get(f"/static/{name}").status_code == 200
    # nothing in the page comes from elsewhere (works offline)
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/app.css").text):
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/%2e%2e/app.py").status_code == 404


def test_config_describes_the_model(client, kaggle4_lens) -> None:
    cfg = client.get("/api/config").json()
    (model,) = cfg["models"]
    assert model["key"] == "a"
    assert model["conv"] == [i.name for i in kaggle4_lens.conv_layers()]
    assert model["dense"] == ["dense_1", "dense_2"]
    assert model["input"]["height"] == 28 and len(model["class_names"]) == 10
    names = [m["name"] for m in cfg["methods"]]
    assert {"gradient", "gradcam", "occlusion", "integrated_gradients"} <= set(names)
    assert len(cfg["colormaps"]["sequential"]) == 256
    assert cfg["limits"]["upload_bytes"] == 5 * 2**20


def test_requests_for_other_host_names_are_refused(client) -> None:
    # DNS rebinding: a page on evil.example that resolves to 127.0.0.1 must not reach the app.
    assert client.get("/api/config", headers={"host": "evil.example"}).status_code == 400


# --- validation images -----------------------------------------------------------------------
def test_sample_by_index_and_at_random(client, kaggle4_lens) -> None:
    d = client.get("/api/sample?index=3").json()
    assert d["index"] == 3 and d["count"] == 500 and len(d["pixels"]) == 784
    assert np.array_equal(np.array(d["pixels"], dtype=np.uint8), digit(kaggle4_lens, 3).reshape(-1))
    a = client.get("/api/sample?seed=7").json()
    b = client.get("/api/sample?seed=7").json()
    assert a["index"] == b["index"]  # seeded


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("index=500", "out of range"),
        ("index=-1", "must lie in"),
        ("index=abc", "whole number"),
        ("index=99999999999999999999", "whole number"),
        ("model=z", "unknown model"),
    ],
)
def test_bad_sample_requests_are_refused(client, query: str, words: str) -> None:
    res = client.get(f"/api/sample?{query}")
    assert res.status_code == 400 and words in res.json()["error"]


# --- uploads -------------------------------------------------------------------------------
def test_upload_converts_with_the_cli_converter(client) -> None:
    # a dark 7 on white paper, 56x40, RGB: grayscale, inverted, resized (and said so)
    image = Image.new("RGB", (40, 56), "white")
    image.paste((20, 20, 20), (8, 8, 32, 14))
    image.paste((20, 20, 20), (26, 8, 32, 50))
    d = client.post("/api/upload", content=png_bytes(image)).json()
    assert d["shape"] == [1, 28, 28] and len(d["pixels"]) == 784
    notes = " ".join(d["notes"])
    assert "grayscale" in notes and "inverted" in notes and "resized 40x56 to 28x28" in notes
    pixels = np.array(d["pixels"]).reshape(28, 28)
    assert pixels[0, 0] == 0 and pixels.max() > 200  # light digit on black, as MNIST


def test_upload_refusals(client) -> None:
    big = client.post("/api/upload", content=b"\x89PNG" + b"\0" * (5 * 2**20 + 10))
    assert big.status_code == 413 and "limit" in big.json()["error"]
    huge = png_bytes(Image.new("L", (5000, 4000)))  # small file, 20 megapixels
    res = client.post("/api/upload", content=huge)
    assert res.status_code == 413 and "megapixels" in res.json()["error"]
    for bad in (b"", b"hello, not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 40):
        res = client.post("/api/upload", content=bad)
        assert res.status_code == 400, bad
    gif = io.BytesIO()
    Image.new("L", (8, 8)).save(gif, format="GIF")
    res = client.post("/api/upload", content=gif.getvalue())
    assert res.status_code == 400 and "PNG or JPG" in res.json()["error"]
    assert client.get("/api/config").status_code == 200  # still serving


# --- unit and class details (computed on demand) ------------------------------------------------
def test_unit_details_computed_on_demand(client) -> None:
    d = client.get("/api/unit?unit=conv2d_2:5").json()
    assert d["source"] == "computed" and d["kind"] == "channel" and d["render"] is None
    assert d["kernel"]["shape"] == [32, 3, 3]
    assert d["kernel"]["picture"]["src"].startswith("data:image/png;base64,")
    items = d["examples"]["items"]
    assert len(items) == 9 and all(i["crop"] is not None for i in items)
    values = [i["value"] for i in items]
    assert values == sorted(values, reverse=True)
    top, left, bottom, right = items[0]["window"]
    assert (bottom - top, right - left) == (5, 5)  # conv2d_2's receptive field
    again = client.get("/api/unit?unit=conv2d_2:5").json()
    assert again == d  # cached
    dense = client.get("/api/unit?unit=dense_2:3").json()
    assert dense["kernel"] is None and dense["examples"]["items"][0]["crop"] is None


def test_render_and_prototype_on_demand(client) -> None:
    r = client.get("/api/render?unit=conv2d_1:0").json()
    assert r["picture"]["w"] == 28 and r["status"] in ("ok", "dead", "failed")
    assert r["r"] is None or r["r"] > 0
    n = client.get("/api/render?unit=conv2d_1:0@5,5").json()
    assert n["picture"]["w"] == 3  # a first-layer neuron is rendered at its 3x3 field
    p = client.get("/api/class?class=7").json()
    assert p["name"] == "7" and 0 <= p["prototype"]["probability"] <= 1
    assert p["prototype"]["picture"]["src"].startswith("data:image/png")


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/api/unit?unit=conv2d_9:1", "unknown layer"),
        ("/api/unit?unit=conv2d_1:99", "32 channels"),
        ("/api/unit?unit=conv2d_1:*", "one at a time"),
        ("/api/unit?unit=conv2d_1:0-3", "one at a time"),
        ("/api/unit?unit=class:3", "/api/class"),
        ("/api/unit?unit=", "no units"),
        ("/api/unit?unit=dense_1:3@1,1", "not spatial"),
        ("/api/render?unit=max_pooling2d_1:0", "pool layer"),
        ("/api/class?class=10", "0-9"),
        ("/api/class?class=x", "whole number"),
        ("/api/unit?unit=conv2d_1:0&model=b", "unknown model"),
    ],
)
def test_bad_detail_requests_are_refused(client, path: str, words: str) -> None:
    res = client.get(path)
    assert res.status_code == 400, res.text
    assert words in res.json()["error"]


# --- the atlas as the source ----------------------------------------------------------------
def test_unit_details_come_from_the_atlas(atlas_client, tiny_atlas: Path) -> None:
    from convlens.atlas import load_manifest

    d = atlas_client.get("/api/unit?unit=conv2d_1:1").json()
    assert d["source"] == "atlas"
    assert d["render"]["picture"]["box"] is not None and d["render"]["r"] is not None
    manifest = load_manifest(tiny_atlas)
    unit = next(u for u in manifest["layers"][0]["units"] if u["index"] == 1)
    assert d["examples"]["items"][0]["value"] == unit["examples"]["values"][0]
    src = d["render"]["picture"]["src"]
    assert src.startswith("/atlas/a/img/")
    res = atlas_client.get(src)
    assert res.status_code == 200 and res.content[:4] == b"\x89PNG"
    # a unit the atlas left out is computed on demand instead
    assert atlas_client.get("/api/unit?unit=conv2d_3:0").json()["source"] == "computed"


@pytest.mark.parametrize(
    "path",
    [
        "manifest.json",  # in the folder, but not a listed picture
        "index.html",
        "../manifest.json",
        "img/../manifest.json",
        "%2e%2e/%2e%2e/etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "/etc/passwd",
        "img/conv2d_1/channels.png/../../../manifest.json",
    ],
)
def test_atlas_files_outside_the_manifest_are_never_served(atlas_client, path: str) -> None:
    res = atlas_client.get(f"/atlas/a/{path}")
    assert res.status_code == 404
    assert b"convlens-atlas" not in res.content and b"root:" not in res.content


def test_an_atlas_of_another_model_is_refused(kaggle4_ckpt: Path, tiny_atlas: Path) -> None:
    import convlens as cl
    from convlens.errors import ConvlensError
    from convlens.server import create_app

    other = cl.build_model("simple2")
    lens = cl.Lens.from_module(other, cl.load(kaggle4_ckpt).spec)
    with pytest.raises(ConvlensError, match="another model"):
        create_app(lens, atlases=[tiny_atlas])


# --- the socket -------------------------------------------------------------------------------
def test_an_update_carries_prediction_activations_and_heatmap(client, kaggle4_lens) -> None:
    import torch

    x = digit(kaggle4_lens, 1)
    with client.websocket_connect(WS) as ws:
        ws.send_bytes(frame(infer(focus={"a": "conv2d_3:12"}, faith=True), x.tobytes()))
        header, payload = receive_until(ws, "update")
        arrays = {a["name"]: a for a in header["arrays"]}
        probs = read_array(payload, arrays["probabilities"])
        xt = torch.from_numpy(x.astype(np.float32) / 255.0)[None]
        expected = kaggle4_lens.probabilities(xt)[0].detach().numpy()
        assert np.allclose(probs, expected, atol=1e-5)
        assert header["predicted"] == int(expected.argmax()) == header["target"]
        for name, shape in (("conv2d_1", [32, 28, 28]), ("conv2d_4", [64, 14, 14])):
            a = arrays[name]
            assert a["dtype"] == "u8" and a["shape"] == shape and a["cmap"] == "sequential"
            maps = kaggle4_lens.forward(xt, [name])[name][0].detach().numpy()
            q = read_array(payload, a).astype(np.float32) / 255 * (a["hi"] - a["lo"]) + a["lo"]
            assert np.abs(q - maps).max() <= (a["hi"] - a["lo"]) / 255 + 1e-5
        assert read_array(payload, arrays["dense_1"]).shape == (256,)
        heat = read_array(payload, arrays["heat"])
        hm = __import__("convlens").attribute(kaggle4_lens, xt, header["target"], "gradient")
        assert np.allclose(heat, hm.values[0].numpy(), atol=1e-5)
        focus = header["focus"]
        maps3 = kaggle4_lens.forward(xt, ["conv2d_3"])["conv2d_3"][0, 12].detach()
        assert focus["value"] == pytest.approx(float(maps3.max()), rel=1e-5)
        top, left, bottom, right = focus["window"]
        assert 0 <= top < bottom <= 28 and 0 <= left < right <= 28
        curves, _ = receive_until(ws, "curves")
        assert len(curves["deletion"]) == len(curves["fractions"]) == 26
        assert set(curves["aucs"]) == {
            "deletion",
            "insertion",
            "random_deletion",
            "random_insertion",
        }


@pytest.mark.parametrize(
    ("method", "layer", "native"),
    [("gradcam", "conv2d_3", (14, 14)), ("occlusion", None, None), ("layercam", None, (7, 7))],
)
def test_other_methods_and_a_chosen_class(client, kaggle4_lens, method, layer, native) -> None:
    with client.websocket_connect(WS) as ws:
        ws.send_bytes(
            frame(infer(method=method, layer=layer, target=4), digit(kaggle4_lens).tobytes())
        )
        header, payload = receive_until(ws, "update")
        assert header["method"] == method and header["target"] == 4
        arrays = {a["name"]: a for a in header["arrays"]}
        if native is None:
            assert "native" not in arrays
        else:
            assert tuple(arrays["native"]["shape"]) == native or layer is None
        assert read_array(payload, arrays["heat"]).shape == (28, 28)


def _bad_frames(x: np.ndarray) -> list[tuple[bytes | str, str]]:
    good = infer()
    nan = np.full((1, 28, 28), np.nan, dtype="<f4")
    return [
        ("hello", "binary frames"),
        (b"\x01", "too short"),
        (struct.pack("<I", 10**6) + b"{}", "bad header length"),
        (struct.pack("<I", 5) + b"{nope", "not JSON"),
        (frame([1, 2]), "JSON object"),  # type: ignore[arg-type]
        (frame({**good, "type": "launch"}, x.tobytes()), "unknown message type"),
        (frame({**good, "extra": 1}, x.tobytes()), "extra"),
        (frame({**good, "id": "one"}, x.tobytes()), "'id'"),
        (frame({**good, "shape": [1, 32, 32]}, x.tobytes()), "does not fit"),
        (frame(good, x.tobytes()[:100]), "expected 784 bytes"),
        (frame({**good, "dtype": "f32"}, nan.tobytes()), "NaN"),
        (frame({**good, "dtype": "f32"}, np.full((1, 28, 28), 9.0, "<f4").tobytes()), "outside"),
        (frame({**good, "dtype": "f64"}, x.tobytes()), "'dtype'"),
        (frame({**good, "models": ["z"]}, x.tobytes()), "unknown model"),
        (frame({**good, "models": []}, x.tobytes()), "'models'"),
        (frame({**good, "method": "magic"}, x.tobytes()), "attribution method"),
        (frame({**good, "target": 12}, x.tobytes()), "out of range"),
        (frame({**good, "target": -1}, x.tobytes()), "'target'"),
        (frame({**good, "method": "gradcam", "layer": "dense_1"}, x.tobytes()), "conv layer"),
        (frame({**good, "layer": "conv2d_1"}, x.tobytes()), "takes no layer"),
        (b"\0" * (1024 * 1024 + 1), "over the"),
    ]


def test_bad_messages_are_refused_and_the_socket_keeps_working(client, kaggle4_lens) -> None:
    x = digit(kaggle4_lens)
    with client.websocket_connect(WS) as ws:
        for data, words in _bad_frames(x):
            if isinstance(data, str):
                ws.send_text(data)
            else:
                ws.send_bytes(data)
            kind, message, _ = receive(ws)
            assert kind == "error", (words, message)
            assert words in message["message"], (words, message)
        ws.send_bytes(frame(infer(id=99), x.tobytes()))
        header, _ = receive_until(ws, "update")
        assert header["id"] == 99


def test_a_stale_focus_unit_is_said_back_and_the_update_still_comes(client, kaggle4_lens) -> None:
    with client.websocket_connect(WS) as ws:
        ws.send_bytes(frame(infer(focus={"a": "conv2d_9:1"}), digit(kaggle4_lens).tobytes()))
        header, _ = receive_until(ws, "update")
        assert "unknown layer" in header["focus"]["error"]


def test_a_newer_drawing_supersedes_a_waiting_one(client, kaggle4_lens) -> None:
    x = digit(kaggle4_lens)
    with client.websocket_connect(WS) as ws:
        for i in range(1, 6):
            ws.send_bytes(frame(infer(id=i, method="occlusion"), x.tobytes()))
        answered: dict[int, str] = {}
        while 5 not in answered:
            kind, header, _ = receive(ws)
            answered[header["id"]] = kind
        assert set(answered) == {1, 2, 3, 4, 5}  # every request is answered, once
        assert answered[5] == "update"
        assert "skipped" in answered.values()  # at least one stale drawing was never computed


def test_cross_origin_sockets_are_refused(client) -> None:
    from starlette.websockets import WebSocketDisconnect

    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect(WS, headers={"origin": "http://evil.example"}) as ws,
    ):
        ws.receive()
    with client.websocket_connect(WS, headers={"origin": "http://127.0.0.1:8000"}) as ws:
        ws.send_text("ping")
        assert receive(ws)[0] == "error"


# --- two models side by side -------------------------------------------------------------------
def test_two_models_answer_the_same_drawing(kaggle4_ckpt: Path, kaggle4_lens) -> None:
    import convlens as cl
    from convlens.server import create_app

    early = cl.load(kaggle4_ckpt, epoch=1)
    app = create_app([early, kaggle4_lens])
    with TestClient(app, base_url=BASE) as c:
        labels = [m["label"] for m in c.get("/api/config").json()["models"]]
        assert "epoch 1" in labels[0]
        with c.websocket_connect(WS) as ws:
            ws.send_bytes(frame(infer(models=["a", "b"]), digit(kaggle4_lens).tobytes()))
            got = {}
            while len(got) < 2:
                kind, header, payload = receive(ws)
                if kind == "update":
                    arrays = {a["name"]: a for a in header["arrays"]}
                    got[header["model"]] = read_array(payload, arrays["probabilities"]).copy()
            assert not np.allclose(got["a"], got["b"])  # epoch 1 and the last differ


def test_models_with_different_inputs_are_refused(kaggle4_lens) -> None:
    import convlens as cl
    from convlens.errors import ConvlensError
    from convlens.server import create_app

    other = cl.Lens.from_module(
        cl.build_model("kaggle4", image_size=32),
        cl.InputSpec(1, 32, 32, class_names=tuple("0123456789")),
    )
    with pytest.raises(ConvlensError, match="different inputs"):
        create_app([kaggle4_lens, other])


# --- the command ------------------------------------------------------------------------------
def test_serve_command_binds_loopback_and_serves(kaggle4_ckpt: Path) -> None:
    import subprocess
    import sys
    import time
    import urllib.request

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
        url = line.split()[3]
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "api/config", timeout=5) as res:
                    assert json.load(res)["models"][0]["key"] == "a"
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_serve_command_errors_are_one_line(kaggle4_ckpt: Path, tmp_path: Path, capsys) -> None:
    from cli_helpers import run_cli

    code, _, err = run_cli(["serve", str(tmp_path / "missing"), "--no-browser"], capsys)
    assert code == 2 and err.count("\n") == 1 and "error" in err
    code, _, err = run_cli(
        [
            "serve",
            str(kaggle4_ckpt),
            "--epoch",
            "1",
            "--epoch",
            "2",
            "--epoch",
            "3",
            "--no-browser",
        ],
        capsys,
    )
    assert code == 2 and "at most twice" in err
    code, _, err = run_cli(
        ["serve", str(kaggle4_ckpt), "--atlas", str(tmp_path), "--no-browser"], capsys
    )
    assert code == 2 and "holds no atlas" in err


def test_serve_warns_off_loopback(kaggle4_ckpt: Path, capsys, monkeypatch) -> None:
    from cli_helpers import run_cli

    import convlens.server as server

    seen = {}
    monkeypatch.setattr(server, "serve", lambda lenses, **kw: seen.update(kw, n=len(lenses)))
    code, _, err = run_cli(
        [
            "serve",
            str(kaggle4_ckpt),
            "--epoch",
            "1",
            "--epoch",
            "3",
            "--host",
            "127.0.0.2",
            "--no-browser",
        ],
        capsys,
    )
    assert code == 0 and "warning: serving on 127.0.0.2" in err
    assert seen["host"] == "127.0.0.2" and seen["n"] == 2 and seen["open_browser"] is False


def test_widget_embeds_the_app_in_a_notebook_cell(kaggle4_lens) -> None:
    import urllib.request

    import convlens as cl

    w = cl.widget(kaggle4_lens, height=600)
    try:
        html = w._repr_html_()
        assert '<iframe src="http://127.0.0.1:' in html and 'height="600"' in html
        assert w.url.startswith("http://127.0.0.1:")
        assert cl.widget(kaggle4_lens).url == w.url  # the same models reuse the server
        with urllib.request.urlopen(w.url + "api/config", timeout=10) as res:
            assert json.load(res)["models"][0]["key"] == "a"
    finally:
        w.stop()
    assert not w.background.thread.is_alive()

"""The real Streamlit server survives the worst uploads of the hostile corpus, sent through the
Models page's own upload widgets by a real browser: afterwards it still answers and still
serves pages, and the page said why each file was not kept."""

import hostile_corpus as corpus
import pytest
from test_browser import browser, streamlit_server  # noqa: F401 - fixtures and the server helper

pytestmark = pytest.mark.browser

# (upload widget's position on the Upload tab, corpus route, file name)
WORST = [
    (5, "pyreflect_stats", "dtype_setstate.npy"),  # the kind of file that segfaulted the server
    (4, "pyreflect_weights", "torch_payload.pth"),
    (3, "model", "expanded_tensor.zip"),
    (3, "model", "zip_bomb.zip"),
    (3, "model", "declares_420M.zip"),
    (2, "curve", "orso_billion_laughs.ort"),
    (0, "nr", "nr_dtype_setstate.npy"),
    (1, "sld", "sld_claims_1e12.npy"),
]


def test_the_server_answers_after_the_worst_uploads(browser, tmp_path):  # noqa: F811
    canary = tmp_path / "EXECUTED"
    by_name = {(c.route, c.name): c for c in corpus.cases(str(canary))}
    folder = tmp_path / "files"
    folder.mkdir()
    with streamlit_server({"REFLECT_DATA_DIR": str(tmp_path / "data")}) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.goto(url + "/models", wait_until="domcontentloaded")
        page.wait_for_selector("input[type=file]", state="attached", timeout=60_000)
        for position, route, name in WORST:
            path = folder / name
            path.write_bytes(by_name[(route, name)].data)
            page.locator("input[type=file]").nth(position).set_input_files(str(path))
            page.wait_for_timeout(1500)
        page.wait_for_selector("text=Not kept", timeout=60_000)
        import urllib.request

        assert urllib.request.urlopen(url + "/_stcore/health", timeout=10).read() == b"ok"
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)  # the explorer still draws
        assert page.locator("[data-testid='stException']").count() == 0
        page.close()
    assert not canary.exists()

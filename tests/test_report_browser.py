"""The audit report in a real browser: headless Chromium through selenium and the system
chromedriver (never selenium-manager, which would download one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bom_support import build_pipeline
from conftest import run_cli
from mlprov.report.html import anchor

CHROMEDRIVER = Path("/usr/bin/chromedriver")
BROWSERS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
HOSTILE = "<script>window.pwned=1</script>"


def _browser() -> str:
    found = next((b for b in BROWSERS if Path(b).exists()), None) or shutil.which("chromium")
    if found is None or not CHROMEDRIVER.exists():
        pytest.skip(
            "no Chromium with chromedriver at /usr/bin (apt-get install chromium chromium-driver;"
            " .ci/run installs them)"
        )
    return found


def test_report_in_headless_chromium(tmp_path: Path) -> None:
    binary = _browser()
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    pipeline = build_pipeline(tmp_path, dataset_name=HOSTILE)
    page = tmp_path / "report.html"
    result = run_cli("report", pipeline.model, "--store", pipeline.store, "--html", page)
    assert result.code == 0, result

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,2600"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.get(page.as_uri())
        assert driver.title.startswith("mlprov audit report")
        for digest in pipeline.trusted + pipeline.untrusted:
            row = driver.find_element(By.ID, anchor("att", digest))
            assert row.is_displayed()
        for digest in pipeline.untrusted:
            assert "UNVERIFIED" in driver.find_element(By.ID, anchor("att", digest)).text
        for digest in (pipeline.train, pipeline.test):
            driver.find_element(By.ID, anchor("art", digest))
        train_row = driver.find_element(By.ID, anchor("art", pipeline.train))
        assert HOSTILE in train_row.text  # shown as text, never run
        assert driver.execute_script("return window.pwned === undefined")
        assert "PASSED" in driver.find_element(By.ID, "verdict").text
        assert driver.find_elements(By.CSS_SELECTOR, "svg.lineage, .graph svg")
        # Nothing was fetched: no resource timing entries, no external src or href.
        resources = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert resources == []
        external = driver.execute_script(
            "return [...document.querySelectorAll('[src],[href]')]"
            ".map(e => e.getAttribute('src') || e.getAttribute('href'))"
            ".filter(u => !u.startsWith('#') && !u.startsWith('data:'))"
        )
        assert external == []
        # A node of the graph links to its row.
        link = driver.find_element(
            By.CSS_SELECTOR, f'a[href="#{anchor("att", pipeline.trusted[2])}"]'
        )
        assert link is not None
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        # The built-in layout (what `pip install mlprov` alone draws) renders the same boxes.
        plain = tmp_path / "report-python.html"
        again = run_cli("report", pipeline.model, "--store", pipeline.store, "--html", plain,
                        "--graph", "python")  # fmt: skip
        assert again.code == 0, again
        driver.get(plain.as_uri())
        boxes = driver.find_elements(By.CSS_SELECTOR, ".graph svg g.node")
        assert len(boxes) >= 8 and all(b.is_displayed() for b in boxes)
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
        assert driver.save_screenshot(str(tmp_path / "report-python.png"))
    finally:
        driver.quit()

"""The web page of `tts serve` in a real headless Chromium (Debian's chromium + chromium-driver,
driven by Selenium): type, pick a voice and speed, click Speak, and check that audio was produced.
Skips with the reason where chromium, chromedriver or selenium is missing."""
from __future__ import annotations

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install -y chromium chromium-driver)"),
    pytest.mark.skipif(DRIVER is None, reason="no chromedriver on PATH (apt-get install -y chromium-driver)"),
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # the network is closed: without these chromium waits on connections it cannot make
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_page_speaks_and_offers_the_download(speech_server, browser):
    from selenium.webdriver.support.ui import Select, WebDriverWait

    base, _ = speech_server
    browser.get(base + "/")
    wait = WebDriverWait(browser, 90)
    wait.until(lambda d: len(Select(d.find_element("id", "voice")).options) >= 1)
    options = [o.get_attribute("value") for o in Select(browser.find_element("id", "voice")).options]
    assert "es_base:em_alex" in options
    Select(browser.find_element("id", "voice")).select_by_value("es_base:em_alex")
    text = browser.find_element("id", "text")
    text.clear()
    text.send_keys("Buenas tardes. ¿Cómo estás?")
    speed = browser.find_element("id", "speed")
    speed.clear()
    speed.send_keys("1.2")
    browser.find_element("id", "speak").click()
    wait.until(lambda d: d.find_element("id", "status").text.startswith(("done", "request failed"))
               or "error" in (d.find_element("id", "status").get_attribute("class") or ""))
    status = browser.find_element("id", "status").text
    assert status.startswith("done"), status
    duration = browser.execute_script("return document.getElementById('player').duration")
    size = int(browser.find_element("id", "player").get_attribute("data-bytes"))
    assert duration > 0.5 and size > 44 + 0.5 * 22050 * 2
    link = browser.find_element("id", "download")
    assert link.is_displayed() and link.get_attribute("href").startswith("blob:")
    assert link.get_attribute("download") == "speech.wav"


def test_page_shows_the_servers_error_message(speech_server, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = speech_server
    browser.get(base + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: d.find_element("id", "voice").get_attribute("value"))
    browser.find_element("id", "text").clear()
    browser.find_element("id", "speak").click()
    wait.until(lambda d: "error" in (d.find_element("id", "status").get_attribute("class") or ""))
    assert "empty" in browser.find_element("id", "status").text

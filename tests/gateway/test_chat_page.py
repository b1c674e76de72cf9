"""The chat page in a real headless Chromium (Debian's `chromium` and `chromium-driver`, driven by Selenium): it
loads from the gateway, sends a prompt, streams the answer in, and shows the pair, TTFT, tokens/s, cost and the
route decision with its candidates; Stop ends the stream and the engine request. Saves `chat_page.png` into the
session's results directory."""

from __future__ import annotations

import shutil

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.fixtures.gateway import ROUTE_KEY, GatewayMesh
from tests.fixtures.results import results_dir

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.fail("chromium and chromedriver are needed (Debian packages chromium, chromium-driver: "
                    "scripts/setup.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_streams_an_answer_and_shows_the_decision(gateway_mesh: GatewayMesh, browser) -> None:
    browser.get(gateway_mesh.url)
    browser.find_element(By.ID, "api-key").send_keys(ROUTE_KEY, Keys.TAB)
    wait = WebDriverWait(browser, 20)
    # With the key, the model list comes from /v1/models: auto plus both pairs.
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#model option")) == 3)
    browser.find_element(By.ID, "max-tokens").clear()
    browser.find_element(By.ID, "max-tokens").send_keys("100")
    browser.find_element(By.ID, "prompt").send_keys("Write one sentence about rivers.")
    browser.find_element(By.ID, "send").click()
    # Streaming: the first words show while the answer is still running (100 tokens at 50/s take ~2 s).
    partial, stats_then = WebDriverWait(browser, 20, poll_frequency=0.02).until(
        lambda driver: (driver.find_element(By.ID, "answer").text, driver.find_element(By.ID, "stats").text)
        if driver.find_element(By.ID, "answer").text else False)
    assert "served by" not in stats_then and len(partial.split()) < 100
    wait.until(lambda driver: "served by" in driver.find_element(By.ID, "stats").text)
    answer = browser.find_element(By.ID, "answer").text
    assert answer.startswith(partial) and len(answer.split()) == 100
    stats = browser.find_element(By.ID, "stats").text
    for label in ("served by", "TTFT", "tokens/s", "cost", "e2e latency"):
        assert label in stats, stats
    assert "syn-small/none" in stats
    decision = browser.find_element(By.ID, "decision").text
    assert "routed" in decision and "cheapest" in decision
    rows = browser.find_elements(By.CSS_SELECTOR, "#candidates tbody tr")
    assert {row.find_elements(By.TAG_NAME, "td")[0].text for row in rows} == {"syn-small/none", "syn-large/none"}
    browser.save_screenshot(str(results_dir() / "chat_page.png"))
    assert (results_dir() / "chat_page.png").stat().st_size > 10_000


async def test_stop_closes_the_stream_and_the_engine_request_ends(gateway_mesh: GatewayMesh, browser) -> None:
    browser.get(gateway_mesh.url)
    browser.find_element(By.ID, "api-key").send_keys(ROUTE_KEY, Keys.TAB)
    browser.find_element(By.ID, "max-tokens").clear()
    browser.find_element(By.ID, "max-tokens").send_keys("450")  # ~9 s at 50 tokens/s
    browser.find_element(By.ID, "prompt").send_keys("Tell me a long story.")
    browser.find_element(By.ID, "send").click()
    wait = WebDriverWait(browser, 20, poll_frequency=0.05)
    wait.until(lambda driver: driver.find_element(By.ID, "answer").text)
    browser.find_element(By.ID, "stop").click()
    wait.until(lambda driver: "stopped" in driver.find_element(By.ID, "stats").text)
    words = len(browser.find_element(By.ID, "answer").text.split())
    assert words < 450 and browser.find_element(By.ID, "send").is_enabled()
    assert await gateway_mesh.mesh.orphaned_engine_requests(settle_timeout_s=3.0) == 0

"""A headless Chromium (Debian's, driven by its chromedriver) for the settings-page test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 30  # generous: CI shares 2 cores with Redis, the provider and the web app
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


def binaries() -> tuple[str, str]:
    """Paths of chromium and chromedriver; a clear failure when `make test` did not install them."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        raise RuntimeError(
            "the browser test needs Debian's chromium and chromium-driver "
            f"(chromium={chromium!r}, chromedriver={driver!r}); `make test` installs them"
        )
    return chromium, driver


@contextmanager
def chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile, quit on exit."""
    binary, driver_path = binaries()
    options = Options()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def find(driver: webdriver.Chrome, css: str) -> WebElement:
    """The element matching `css`, waited for (at most WAIT_S)."""
    wait = WebDriverWait(driver, WAIT_S)
    return wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def click(driver: webdriver.Chrome, css: str) -> None:
    """Click the element matching `css` once it is clickable."""
    wait = WebDriverWait(driver, WAIT_S)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, css))).click()


def submit(driver: webdriver.Chrome, css: str) -> None:
    """Click a button that loads another page, and wait until the old page is gone."""
    wait = WebDriverWait(driver, WAIT_S)
    button = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, css)))
    button.click()
    wait.until(lambda _: gone(button))


def gone(element: WebElement) -> bool:
    """True once `element` left the document (the page it was on was replaced).

    Chromedriver reports an element caught mid-navigation either as stale or as a node that
    "does not belong to the document"; selenium's staleness_of knows only the first.
    """
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc.msg):
            return True
        raise
    return False


def fill(driver: webdriver.Chrome, fields: dict[str, str]) -> None:
    """Type into inputs, by CSS selector."""
    for css, value in fields.items():
        element = find(driver, css)
        element.clear()
        element.send_keys(value)


def wait_text(driver: webdriver.Chrome, css: str, text: str) -> None:
    """Wait until the element matching `css` contains `text`."""
    wait = WebDriverWait(driver, WAIT_S)
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))

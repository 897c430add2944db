"""Debian's headless Chromium, driven through chromedriver with selenium, for tests of the web
page; screenshots go to tests/artifacts/web/ (git-ignored) and stay after the run."""
from __future__ import annotations

import os
import subprocess

from debian import command, ensure_packages
from harness import ROOT

ARTIFACTS = os.path.join(ROOT, "tests", "artifacts", "web")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def ensure_browser() -> None:
    """chromium, chromium-driver and zbar-tools (zbarimg reads QR codes back), from apt."""
    ensure_packages({"chromium": command("chromium"), "chromium-driver": command("chromedriver"),
                     "zbar-tools": command("zbarimg")})


def start_chromium(download_dir: str, language: str = "en"):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1000,1400", f"--lang={language}", "--no-first-run",
                "--disable-background-networking", "--disable-component-update"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {
        "intl.accept_languages": language,
        "download.default_directory": download_dir,
        "download.prompt_for_download": False,
        "safebrowsing.enabled": False,
    })
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": download_dir})
    return driver


def screenshot(driver, name: str) -> str:
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, f"{name}.png")
    driver.save_screenshot(path)
    return path


def decode_qr(png_path: str) -> str:
    """The text of the QR code in an image, read by zbarimg."""
    out = subprocess.run(["zbarimg", "--raw", "-q", png_path], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"zbarimg found no code in {png_path}: {out.stderr}"
    return out.stdout.strip()

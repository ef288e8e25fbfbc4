"""The reference console in a real browser (Debian's headless Chromium, driven by Selenium through
chromedriver) against the embedded local stack: a person's whole story, a screenshot of each step
under build/screenshots/. `make test` installs chromium and chromium-driver when they are absent."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.photos_fixture import make_photo
from infra.local.stack import LocalStack
from infra.local.template import REPO_ROOT

pytestmark = pytest.mark.e2e
SCREENSHOTS = REPO_ROOT / "build" / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT_SECONDS = 60


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack.running(quiet=True, training_seconds=1.0, prediction_seconds=0.3) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed (make test installs Debian's chromium and "
                    "chromium-driver with apt-get)", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,2400"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Callable[[range], str]:
    folder = tmp_path_factory.mktemp("photos")

    def files(seeds: range) -> str:
        paths = []
        for seed in seeds:
            path = folder / f"photo-{seed:03d}.jpg"
            path.write_bytes(make_photo(seed))
            paths.append(str(path))
        return "\n".join(paths)  # how Selenium sends several files to one <input type=file multiple>

    return files


class Console:
    def __init__(self, driver: Any, url: str) -> None:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.url = driver, url
        # the console re-renders a list while it is read: such a read is simply tried again
        self.wait = WebDriverWait(driver, WAIT_SECONDS, ignored_exceptions=[StaleElementReferenceException])
        self.step = 0
        shutil.rmtree(SCREENSHOTS, ignore_errors=True)
        SCREENSHOTS.mkdir(parents=True)

    def find(self, testid: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, f"[data-testid='{testid}']")

    def all(self, testid: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, f"[data-testid='{testid}']"))

    def until(self, condition: Callable[[], Any], what: str) -> Any:
        return self.wait.until(lambda _: condition(), message=f"waiting for {what}")

    def texts(self, testid: str) -> list[str]:
        """The texts of every element with this test id, read in one go (re-read if the console
        re-rendered them meanwhile)."""
        from selenium.common.exceptions import StaleElementReferenceException

        for _ in range(5):
            try:
                return [node.text for node in self.all(testid)]
            except StaleElementReferenceException:
                continue
        return [node.text for node in self.all(testid)]

    def shot(self, name: str) -> None:
        self.step += 1
        self.driver.save_screenshot(str(SCREENSHOTS / f"{self.step:02d}-{name}.png"))

    def upload(self, files: str, count: int) -> None:
        self.find("files").send_keys(files)
        self.find("upload").click()
        self.until(lambda: f"{count} photo(s) uploaded" in self.find("upload-status").text, "the upload")

    def choose(self, testid: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.find(testid)).select_by_value(value)

    def set_checkbox(self, testid: str, checked: bool) -> None:
        box = self.find(testid)
        if box.is_selected() != checked:
            box.click()


def test_a_person_trains_retrains_compares_and_rolls_back_in_the_console(stack: LocalStack, browser: Any,
                                                                        photos: Callable[[range], str]) -> None:
    console = Console(browser, f"{stack.api.url}/")
    browser.get(console.url)
    console.shot("sign-in")
    console.find("user").send_keys("ada")
    console.find("sign-in-button").click()
    console.until(lambda: console.find("who").text == "signed in as ada", "signing in")

    # First training: 12 photos, a trigger word of her own
    console.upload(photos(range(0, 12)), 12)
    console.shot("uploaded")
    console.find("trigger-word").send_keys("ADAXQZ")
    console.find("start-training").click()
    console.until(lambda: console.texts("training-status") == ["succeeded"], "the first training")
    console.until(lambda: len(console.all("current-badge")) == 1, "the first version to be current")
    console.shot("first-version")
    first_version = console.texts("version")[0].split()[1]

    # A generation with it
    console.find("generate-button").click()
    console.until(lambda: console.texts("generation-status") == ["succeeded"], "the generation")
    assert console.find("result").find_element("css selector", "img").get_attribute("naturalWidth") != "0"
    console.shot("generated")

    # Three more photos, "only these": findings say why not, each with its guidance
    console.upload(photos(range(100, 103)), 3)
    console.choose("mode", "replace")
    console.find("start-training").click()
    console.until(lambda: console.all("refused"), "the findings")
    findings = " ".join(console.texts("finding"))
    assert "LOW_IMAGE_COUNT" in findings and "FEWER_THAN_PREVIOUS" in findings and "15-25" in findings
    console.shot("findings")

    # Merge them instead: 15 photos, the same trigger word, a second version
    console.choose("mode", "merge")
    console.set_checkbox("acknowledge", True)
    console.find("start-training").click()
    console.until(lambda: console.texts("training-status") == ["succeeded"]
                  and "Training 2 on 15 photos" in console.find("progress").text, "the retraining")
    console.until(lambda: len(console.all("version")) == 2 and "current" in console.texts("version")[0],
                  "the second version to be current")
    console.shot("second-version")
    second_version = console.texts("version")[0].split()[1]
    assert second_version != first_version

    # Compare the two versions like for like: same prompt, same seed
    versions = {option.text: option.get_attribute("value")
                for option in console.find("version-a").find_elements("css selector", "option")}
    first_id = next(value for text, value in versions.items() if first_version in text)
    second_id = next(value for text, value in versions.items() if second_version in text)
    console.find("seed").send_keys("42")
    console.choose("version-a", first_id)
    console.choose("version-b", second_id)
    console.find("generate-button").click()
    console.until(lambda: console.texts("generation-status") == ["succeeded", "succeeded"], "both generations")
    captions = console.texts("result-caption")
    assert first_version in captions[0] and second_version in captions[1]
    assert all("seed 42" in caption for caption in captions)
    console.shot("compared")

    # Roll back to the first version
    console.find("rollback").click()
    console.until(lambda: "current" in console.texts("version")[1], "the rollback")
    console.shot("rolled-back")

    # The gallery says which version made each image
    console.find("refresh-gallery").click()
    console.until(lambda: len(console.all("gallery-item")) == 3, "the gallery")
    made_by = console.texts("made-by")
    assert sum(first_version in label for label in made_by) == 2
    assert sum(second_version in label for label in made_by) == 1
    console.shot("gallery")
    assert len(list(SCREENSHOTS.glob("*.png"))) == console.step == 9

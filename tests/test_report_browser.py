"""report.html as a person sees it: run_prediction.py on 50 small photographs, the page opened in headless Chromium
(tests/browser.py drives it through the DevTools protocol): 50 rows, every thumbnail loaded, a click on a column
header sorts by it (a second one the other way), and nothing in the console. Skipped where no Chromium is
installed (Debian: apt-get install chromium; .ci/run installs it)."""

import pytest
from browser import find_browser, open_page
from helpers import run_script, untrained_weights
from test_run_prediction import SMALL, write_photos

from lib.run_folder import REPORT

COUNT = 50
BROWSER = find_browser()
pytestmark = [
    pytest.mark.slow,  # TensorFlow in a subprocess, and a browser
    pytest.mark.skipif(BROWSER is None, reason="no Chromium installed (apt-get install chromium)"),
]

ROWS = "Array.from(document.querySelectorAll('#results tbody tr'))"
LOAD_ALL = """(async () => {
  const images = Array.from(document.querySelectorAll('#results img'));
  images.forEach(image => { image.loading = 'eager'; });
  await Promise.all(images.map(image => image.complete ? null : new Promise(done => {
    image.addEventListener('load', done); image.addEventListener('error', done); })));
  return images.map(image => image.complete && image.naturalWidth > 0);
})()"""


def header_centre(page, name):
    return page.evaluate(f"""(() => {{
      const header = Array.from(document.querySelectorAll('#results th')).find(th => th.textContent === '{name}');
      header.scrollIntoView();
      const box = header.getBoundingClientRect();
      return [box.left + box.width / 2, box.top + box.height / 2, header.cellIndex];
    }})()""")


def column(page, index):
    return page.evaluate(f"{ROWS}.map(row => row.cells[{index}].textContent)")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return untrained_weights(tmp_path_factory.mktemp("model"), "tiny.weights.h5", seed=0)


def test_the_report_of_50_photographs_in_a_browser(tmp_path, weights):
    write_photos(tmp_path / "photos", COUNT)
    out = tmp_path / "out"
    result = run_script("run_prediction.py", tmp_path / "photos", "-o", out, "--weights", weights, *SMALL,
                        cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    with open_page(BROWSER, out / REPORT) as page:
        assert page.evaluate(f"{ROWS}.length") == COUNT
        assert page.evaluate("document.querySelectorAll('#results img').length") == COUNT
        assert page.evaluate(LOAD_ALL) == [True] * COUNT  # every thumbnail found and decoded
        x, y, index = header_centre(page, "vessel_density")
        page.click(x, y)
        values = [float(value) for value in column(page, index)]
        assert values == sorted(values)
        x, y, _ = header_centre(page, "vessel_density")
        page.click(x, y)
        assert [float(value) for value in column(page, index)] == sorted(values, reverse=True)
        x, y, name_index = header_centre(page, "image")
        page.click(x, y)
        assert column(page, name_index) == [f"p{number}" for number in range(COUNT)]  # numbers in names in order
        page.evaluate("new Promise(done => setTimeout(done, 200))")  # let late console messages arrive
        assert page.errors == []

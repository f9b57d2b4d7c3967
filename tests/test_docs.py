"""The documentation a user reads: links and pictures that exist, words about the code rather than about how it was
made, and the README's submission table against the files run_lab.py writes."""
import contextlib
import importlib
import io
import re
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
# The scripts a user runs from the repository root; MLPAE_train_script.py is train_script.py's parser.
SCRIPTS = ["train_script", "diffusion", "visualization", "random_generation", "evaluate", "data_analysis", "run_lab"]
SKIPPED_DIRS = {"tests", "data", "runs", "bonus", "models", "vis", "log", "node_modules", "__pycache__"}

# Words that tell when, where or in which sitting something was done: history, which belongs in CHANGELOG.md.
HISTORY = re.compile("|".join([
    r"\bissues?\s*#?\d+",
    r"previous default", r"was the default", r"default (then|before|of the morning|now)\b", r"\b(new|old) default",
    r"\b20\d\d-[01]\d-[0-3]\d\b",                      # a calendar date
    r"(?<![\w.:/\[-])(?:[01]?\d|2[0-3]):[0-5]\d(?![\w:])",   # a time of day, 13:07
    r"\bsessions?\b",
    r"one-off (script|sweep)", r"not committed",
    r"\b(the|a|this) (slower|faster) machine", r"\bthe lab machine\b", r"machines are not kept",
    r"\b(this|that|the) (morning|afternoon|evening)\b", r"\byesterday\b", r"\btoday\b(?!\(\))",   # not date.today(): a bench stamps its output
    r"how we got here", r"\bfirst version\b",
]), re.IGNORECASE)


def hits(text):
    return [m.group(0) for m in HISTORY.finditer(text)]


def relative_targets(text):
    """Every relative link and image of a markdown page: [..](x), ![..](x), <img src="x">."""
    targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text) + re.findall(r"<img[^>]*\bsrc=\"([^\"]+)\"", text)
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def anchors(text):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)}


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_images_exist(page):
    text = page.read_text()
    missing = []
    for target in relative_targets(text):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            missing.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            missing.append(target)
    assert not missing, f"{page.name}: broken links {missing}"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_speak_of_the_code_not_its_history(page):
    found = hits(page.read_text())
    assert not found, f"{page.name}: history words {found} (they belong in CHANGELOG.md)"


def sources():
    return [path for path in sorted(ROOT.rglob("*.py"))
            if not any(part in SKIPPED_DIRS or part.startswith(".") for part in path.relative_to(ROOT).parts[:-1])]


def comments_and_strings(path):
    with path.open("rb") as f:
        return [(tok.start[0], tok.string) for tok in tokenize.tokenize(f.readline)
                if tok.type in (tokenize.COMMENT, tokenize.STRING)]


def test_source_comments_and_strings_speak_of_the_code():
    found = [f"{path.relative_to(ROOT)}:{line}: {hits(text)}"
             for path in sources() for line, text in comments_and_strings(path) if hits(text)]
    assert not found, "history words in comments, docstrings or help texts:\n" + "\n".join(found)


def help_text(name, monkeypatch):
    module = importlib.import_module(name)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        module.main(["--help"]) if name != "run_lab" else module.main()
    return out.getvalue()


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_says_what_a_flag_does_now(name, monkeypatch):
    text = help_text(name, monkeypatch)
    assert "--seed" in text, "no help printed"
    assert not hits(text), f"{name}.py --help: history words {hits(text)}"


def test_history_words_are_caught():
    for phrase in ["see issue 20", "the previous default", "on 2026-11-23", "at 13:07", "an earlier session",
                   "a one-off script, not committed", "on the slower machine", "TODAY's default"]:
        assert hits(phrase), phrase
    for phrase in ["--guidance 1.5", "x[:, 0:3]", "ratio 3:1 of", "torch 2.14.1", "default 0.999", "epoch 12"]:
        assert not hits(phrase), phrase


def submission_table():
    """The README's submission table: the files in its 'the lab writes' column."""
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## [^\n]*[Ss]ubmission[^\n]*\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert section, "README has no submission section"
    rows = [line for line in section.group(1).splitlines() if line.startswith("|")][2:]
    assert rows, "the submission section has no table"
    header = [cell.strip() for cell in
              next(line for line in section.group(1).splitlines() if line.startswith("|")).strip("|").split("|")]
    column = next(i for i, cell in enumerate(header) if "lab writes" in cell)
    return [name for row in rows for name in re.findall(r"`([^`]+)`", row.strip("|").split("|")[column])]


def test_submission_table_lists_what_run_lab_writes():
    import run_lab
    listed = submission_table()
    assert sorted(listed) == sorted(run_lab.ARTEFACTS), (
        f"in the README only: {sorted(set(listed) - set(run_lab.ARTEFACTS))}; "
        f"written by run_lab.py only: {sorted(set(run_lab.ARTEFACTS) - set(listed))}")


def test_every_number_in_the_readme_is_in_a_docs_page():
    """The README summarises docs/: a number it states must be in a page that says which command measured it."""
    readme = (ROOT / "README.md").read_text().split("\n## References")[0]
    readme = re.sub(r"\]\([^)]*\)|<img[^>]*>", "]", readme)    # link targets and image tags are not claims
    docs = " ".join(page.read_text() for page in DOCS[1:])
    numbers = set(re.findall(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?(?![\w])", readme))
    missing = sorted(n for n in numbers if not re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", docs))
    assert not missing, f"numbers in README.md that no docs page holds: {missing}"

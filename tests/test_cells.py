from hypothesis import given, strategies as st

from canada_asylum_data.cells import SUPPRESSED, UNREADABLE, Count, clean_text, read_count


def test_plain_numbers_and_separators():
    assert read_count("1,165") == Count(1165)
    assert read_count(" 3,910 ") == Count(3910)
    assert read_count(42) == Count(42)
    assert read_count(42.0) == Count(42)
    assert read_count("0") == Count(0)


def test_invisible_characters_and_odd_spaces():
    assert read_count("\u200b39").value == 39
    assert read_count("609\u200b").value == 609
    assert read_count("7,\u200b786").value == 7786
    assert read_count("898\u00a0").value == 898


def test_footnote_inside_cell():
    assert read_count("46 Footnote *").value == 46


def test_suppression_markers():
    for raw in ("--", "-", "\u200b--", "--\u200b", " -- "):
        cell = read_count(raw)
        assert cell.value is None and cell.marker == SUPPRESSED and cell.suppressed


def test_unreadable_cells_get_a_note_not_a_number():
    for raw in ("v", "--3", "---", "-5", "abc", "12a", "1,23"):
        cell = read_count(raw)
        assert cell.value is None, raw
        assert cell.marker == UNREADABLE
        assert cell.note and repr(clean_text(raw))[:10] in cell.note


def test_negative_and_fractional_numbers_are_not_counts():
    assert read_count(-3).value is None
    assert read_count(2.5).value is None
    assert read_count(float("nan")).value is None


def test_empty_cells():
    assert read_count(None) == Count(None, UNREADABLE)
    assert read_count("") == Count(None, UNREADABLE)
    assert read_count("\u200b") == Count(None, UNREADABLE)


def test_csv_form():
    assert read_count("--").csv == "--"
    assert read_count("12").csv == 12
    assert read_count("v").csv == ""


def test_clean_text():
    assert clean_text("United States    of America") == "United States of America"
    assert clean_text("\u200bTotal") == "Total"
    assert clean_text("Pending (as\u00a0of 2013/12/31)") == "Pending (as of 2013/12/31)"


@given(st.text())
def test_read_count_never_raises_and_never_invents_numbers(raw):
    cell = read_count(raw)
    assert isinstance(cell, Count)
    if cell.value is not None:
        digits = "".join(ch for ch in raw if ch.isdigit())
        assert str(cell.value) == digits.lstrip("0") or cell.value == 0
        assert cell.marker is None
    else:
        assert cell.marker in (SUPPRESSED, UNREADABLE)


@given(st.sampled_from(["--", "-", "\u200b--", "--\u200b", "\u00a0--"]))
def test_markers_never_become_numbers(raw):
    assert read_count(raw).value is None
    assert read_count(raw).marker == SUPPRESSED


@given(st.integers(min_value=0, max_value=10**9))
def test_formatted_integers_round_trip(n):
    assert read_count(f"{n:,}").value == n
    assert read_count(str(n)).value == n

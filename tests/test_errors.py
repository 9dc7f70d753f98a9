from hsjp.errors import brief


def test_brief_keeps_the_first_sentence_of_a_long_library_error():
    e = OSError("We cannot find the requested files in the local cache. Please check your connection\nand more")
    assert brief(e) == "OSError: We cannot find the requested files in the local cache"


def test_brief_cuts_at_a_word_boundary():
    text = brief(ValueError("word " * 100), limit=40)
    assert text.endswith("word...") and len(text) <= len("ValueError: ") + 40

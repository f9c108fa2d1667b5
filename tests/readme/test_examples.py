"""How the README harness reads examples: annotations, commands, expected output."""

from __future__ import annotations

import pytest

from tests.readme.examples import ReadmeFormatError, output_matches, parse_readme

README = '''\
Some text.

<!-- example: exit=1 env="SECRET=s3cret" timeout=30 -->
```sh
# what this does (a description, not output)
wsreplay run a.wsr \\
    --target ws://127.0.0.1:8765   # trailing note
# PASS  a.wsr session 0
# 1 of … passed

wsreplay show a.wsr
```

```python
print("not a shell example")
```

<!-- example: skip="needs your staging server" -->
```bash
wsreplay run chat.wsr --target wss://staging.example
```

<!-- example: background -->

```sh
python scripts/racy_chat.py --port 8765
```
'''


def test_annotations_commands_and_expected_output_are_read() -> None:
    first, skipped, server = parse_readme(README)
    assert (first.line, first.exit, first.env, first.timeout) == (4, 1, (("SECRET", "s3cret"),),
                                                                   30.0)
    run, show = first.commands
    assert run.text == "wsreplay run a.wsr --target ws://127.0.0.1:8765   # trailing note"
    assert run.line == 6
    assert run.expected == ("PASS  a.wsr session 0", "1 of … passed")
    assert (show.text, show.expected) == ("wsreplay show a.wsr", ())
    assert skipped.skip == "needs your staging server"
    # an annotation separated from its block by a blank line still applies; text does not
    assert server.background is True
    assert server.commands[0].text == "python scripts/racy_chat.py --port 8765"


def test_an_annotation_applies_only_to_the_block_right_after_it() -> None:
    examples = parse_readme("<!-- example: exit=2 -->\nsome prose\n```sh\nls\n```\n")
    assert examples[0].exit == 0


def test_a_malformed_annotation_names_its_line() -> None:
    with pytest.raises(ReadmeFormatError, match=r"README.md:2: example annotation 'exit=x'"):
        parse_readme("\n<!-- example: exit=x -->\n```sh\nls\n```\n")


@pytest.mark.parametrize(("expected", "output", "found"), [
    ("threshold in (244ms, 245ms]", "x\nthreshold in (244ms,   245ms]: fails\n", True),
    ("session 1: app-error: …WebSocketDisconnected: not connected",
     "session 1: app-error: trio_websocket.WebSocketDisconnected: not connected", True),
    ("1 of … passed", "0 of 9 sessions passed", False),
    ("a … b … c", "a c b", False),
])
def test_expected_lines_match_output_with_ellipses_as_wildcards(expected: str, output: str,
                                                                found: bool) -> None:
    assert output_matches(expected, output) is found

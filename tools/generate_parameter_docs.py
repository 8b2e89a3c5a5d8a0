"""Write hmr_node's generated parameter files from the dataclasses in hmr_ros/ros/params.py.

- config/hmr_ros.yaml: every parameter with its default and a comment (parameters_yaml());
- docs/ros-interface.md: the table between the params:begin and params:end markers
  (parameter_table_markdown()).

Run after adding or changing a parameter: `python tools/generate_parameter_docs.py`;
test/ros/test_params.py fails while either file is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hmr_ros.ros.params import parameter_table_markdown, parameters_yaml  # noqa: E402

BEGIN, END = '<!-- params:begin -->', '<!-- params:end -->'
TABLE_FILE = REPO / 'docs' / 'ros-interface.md'


def main() -> int:
    """Write both files; 1 when the docs file has no table block."""
    (REPO / 'config' / 'hmr_ros.yaml').write_text(parameters_yaml())
    text = TABLE_FILE.read_text()
    if BEGIN not in text or END not in text:
        sys.stderr.write(f'{TABLE_FILE} has no {BEGIN} ... {END} block\n')
        return 1
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    TABLE_FILE.write_text(f'{head}{BEGIN}\n{parameter_table_markdown()}\n{END}{tail}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

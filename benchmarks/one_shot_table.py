"""Issue 20's table: every few-shot method on the same tasks, per protocol, from a study directory.

The Siamese configuration is chosen on mean validation accuracy (one-shot tasks of held-out validation
classes); each cell pools the chosen configuration's repeats (accuracy [95% Wilson interval over all their
tasks], mean ± std over repeats). Prints markdown.

    python benchmarks/one_shot_table.py runs/one-shot
"""

from __future__ import annotations

import sys

from transferlab.report.few_shot import markdown, method_table
from transferlab.study.store import Store


def main(directory: str) -> None:
    with Store(directory) as store:
        runs = store.runs()
    print(markdown(method_table(runs)))


if __name__ == "__main__":
    main(sys.argv[1])

"""Stand-in for the expert in the demo: label a suggestion queue from simulation truth.

Usage: python scripts/demo_expert.py QUEUE.csv GROUND_TRUTH.csv OUT_LABELS.csv

QUEUE.csv is a round's ``suggestions.csv`` (candidate_id, z, y, x, ...); GROUND_TRUTH.csv is
``ground_truth.csv`` written by ``cryoal simulate tomogram`` (z, y, x, class_name). Each
suggested candidate gets the class of the nearest true particle; the result is a labels CSV
for ``cryoal labels import``. In real use the expert labels in napari or edits this CSV.
"""

from __future__ import annotations

import sys

import pandas as pd
from scipy.spatial import cKDTree


def main(queue_csv: str, truth_csv: str, out_csv: str) -> None:
    queue, truth = pd.read_csv(queue_csv), pd.read_csv(truth_csv)
    _, nearest = cKDTree(truth[["z", "y", "x"]]).query(queue[["z", "y", "x"]])
    labels = pd.DataFrame(
        {"candidate_id": queue["candidate_id"], "label": truth["class_name"].to_numpy()[nearest]}
    )
    labels.to_csv(out_csv, index=False)
    print(f"expert labelled {len(labels)} candidates -> {out_csv}")


if __name__ == "__main__":
    main(*sys.argv[1:4])

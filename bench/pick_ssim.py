"""Prints the bench.train_gs variant suffix (``+shifted_ssim``, ``+fft_ssim``, ``+sep_ssim`` or nothing for ``conv``) of
the fastest compiled SSIM method among today's rows of an ``ssim_speed`` CSV on this GPU (``shifted`` when none ran),
for scripts that choose the SSIM option from a fresh measurement.

    python -m bench.pick_ssim bench/results/ssim_speed.csv
"""

from __future__ import annotations

import datetime as dt
import sys

import pandas as pd
import torch


def fastest_compiled(csv: str) -> str:
    rows = pd.read_csv(csv)
    if "compiled" not in rows or "method" not in rows:
        return "shifted"
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    today = rows[(rows["date"] == dt.date.today().isoformat()) & (rows["device"] == name)
                 & (rows["compiled"] == True) & rows["ms_forward_backward"].notna()]  # noqa: E712
    return "shifted" if today.empty else str(today.sort_values("ms_forward_backward").iloc[0]["method"])


SUFFIX = {"conv": "", "separable": "+sep_ssim", "fft": "+fft_ssim", "shifted": "+shifted_ssim"}

if __name__ == "__main__":
    print(SUFFIX[fastest_compiled(sys.argv[1])])

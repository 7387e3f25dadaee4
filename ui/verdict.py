"""A verdict (reflect_core.analysis.verdicts) drawn in its colour, with an icon that says the same
thing for readers who do not see the colour."""

from __future__ import annotations

import streamlit as st

from reflect_core.analysis.verdicts import Verdict

ICONS = {"good": ":material/check_circle:", "consistent": ":material/check_circle:", "usable": ":material/info:",
         "unknown": ":material/help:", "weak": ":material/warning:", "close": ":material/warning:",
         "useless": ":material/dangerous:", "inconsistent": ":material/dangerous:",
         "extrapolating": ":material/dangerous:"}


def show_verdict(verdict: Verdict, where=st) -> None:
    getattr(where, verdict.tone)(verdict.text, icon=ICONS[verdict.level])

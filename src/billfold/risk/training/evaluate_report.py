"""`billfold risk evaluate`'s report as plain-text tables, the two worlds side by side."""

from __future__ import annotations

from typing import Any

SCORERS = ("rules", "model", "both", "served")
WORLDS = ("trained", "unseen")


def format_report(report: dict[str, Any]) -> str:
    data, worlds = report["data"], report["worlds"]
    trained, unseen = worlds["trained"], worlds["unseen"]
    lines = [
        f"model {report['model_version']}: {data['users']:,} users, {data['days']} days; "
        f"test window {report['windows']['test']}",
        f"worlds: trained (seed {trained['seed']}, the one the model learned from) and unseen "
        f"(seed {unseen['seed']}, other behaviour: synth.SECOND_WORLD)",
        "",
        "later window: fraud caught (R@x%: recall at x% false-positive rate; blocked: above the",
        "threshold at 1% of validation's legitimate movements, or for served, reviewed or declined",
        "as the engine decides; false-block: legitimate movements blocked so)",
    ]
    for name in WORLDS:
        later = worlds[name]["later_window"]
        lines.append(
            f"{name}: {later['fraud_events']:,} fraud / {later['legit_events']:,} legitimate"
        )
        lines.append(
            f"{'':7}{'AP':>7}{'R@0.1%':>8}{'R@1%':>8}{'R@5%':>8}{'blocked':>9}"
            f"{'false-block':>13}{'money':>8}"
        )
        for scorer in SCORERS:
            m = later[scorer]
            # Served is a verdict, blocked or not: it ranks nothing.
            ranking = (
                f"{m['average_precision']:7.3f}{_pct(m['recall_at_0.1%_fpr']):>8}"
                f"{_pct(m['recall_at_1.0%_fpr']):>8}{_pct(m['recall_at_5.0%_fpr']):>8}"
                if scorer != "served"
                else f"{'-':>7}{'-':>8}{'-':>8}{'-':>8}"
            )
            lines.append(
                f"{scorer:7}{ranking}{_pct(m['recall_at_threshold']):>9}"
                f"{_pct(m['false_block_rate'], 2):>13}{_pct(m['money_caught']):>8}"
            )
    lines += ["", *_friction_lines(report)]
    lines += ["", *_held_out_lines(report)]
    shift = report["time_shift"]
    lines += [
        "",
        f"clock time: every clock of the trained world {shift['hours']} hours later changes the "
        f"verdict of {_pct(shift['changed'], 2)} of {shift['legit_events']:,} legitimate "
        "movements",
        "",
        *_target_lines(report),
    ]
    return "\n".join(lines)


def _friction_lines(report: dict[str, Any]) -> list[str]:
    worlds = report["worlds"]
    lines = [
        "legitimate movements as served, test window (blocked: declined or held for review |",
        "stepped up: asked for a PIN)",
        f"{'':22}{'trained':>28}{'unseen':>28}",
        f"{'':22}" + f"{'events':>10}{'blocked':>9}{'step-up':>9}" * 2,
    ]

    def row(label: str, cells: list[dict[str, Any]]) -> str:
        return f"{label:22}" + "".join(
            f"{c['events']:>10,}{_pct(c['blocked'], 2):>9}{_pct(c['stepped_up'], 2):>9}"
            for c in cells
        )

    friction = [worlds[name]["friction"] for name in WORLDS]
    lines.append(row("all", [f["overall"] for f in friction]))
    lines.append("by account age")
    for band in friction[0]["by_age"]:
        lines.append(row("  " + band, [f["by_age"][band] for f in friction]))
    lines.append("by behaviour")
    for behaviour in friction[0]["by_behaviour"]:
        lines.append(row("  " + behaviour, [f["by_behaviour"][behaviour] for f in friction]))
    return lines


def _held_out_lines(report: dict[str, Any]) -> list[str]:
    worlds = report["worlds"]
    lines = [
        "held out of training: recall at 1% FPR of the rules, the model and both, per world",
        f"{'pattern':20}{'trained':>38}{'unseen':>38}",
        f"{'':20}" + f"{'fraud':>8}{'rules':>10}{'model':>10}{'both':>10}" * 2,
    ]
    for pattern in worlds["trained"]["held_out"]:
        cells = []
        for name in WORLDS:
            result = worlds[name]["held_out"][pattern]
            if result["both"] is None:
                cells.append(f"{result['fraud_events']:>8}{'(none in the test window)':>30}")
                continue
            cells.append(
                f"{result['fraud_events']:>8}"
                + "".join(f"{_pct(result[s]['recall_at_1.0%_fpr']):>10}" for s in SCORERS[:3])
            )
        lines.append(f"{pattern:20}{''.join(cells)}")
    return lines


def _target_lines(report: dict[str, Any]) -> list[str]:
    targets = report["targets"]
    lines = ["targets (issue 24):"]
    for name in WORLDS:
        t = targets[name]
        held = t["held_out_recall_at_1%_fpr"]
        missed = [p for p, ok in held.items() if not ok]
        lines.append(
            f"  {name}: false-block <= 0.5% overall {_yes(t['false_block_overall'])}, "
            f"<= 1% per age band {_yes(t['false_block_per_band'])}, "
            f"recall at 1% FPR >= 80% {_yes(t['recall_at_1%_fpr'])}, "
            f"held out >= 60% {_yes(not missed)}"
            + (f" (not: {', '.join(missed)})" if missed else "")
        )
    lines.append(f"  clock time changes <= 0.5% of verdicts {_yes(targets['time_shift'])}")
    return lines


def _yes(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def _pct(value: float, digits: int = 1) -> str:
    return f"{value * 100:.{digits}f}%"

"""Plain Python tools for examples/data_pipeline.yaml: load a CSV of orders, clean it,
aggregate it three ways in parallel, and write a report. No network, no model."""

from __future__ import annotations

import csv
from collections import defaultdict
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import BaseModel

HERE = Path(__file__).resolve().parent


class Order(BaseModel):
    order_id: str
    month: str
    region: str
    product: str
    quantity: int
    unit_price: float

    @property
    def revenue(self) -> Decimal:
        return Decimal(str(self.unit_price)) * self.quantity


class Cleaned(BaseModel):
    orders: list[Order]
    dropped: list[str]
    """Why each rejected row was dropped."""


def load_csv(path: str) -> list[dict[str, str]]:
    """Read a CSV file into rows (one mapping per line).

    Args:
        path: CSV file; a relative path is read from the examples directory.
    """
    file = Path(path)
    if not file.is_absolute():
        file = HERE / file
    with file.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def clean_orders(rows: list[dict[str, str]]) -> Cleaned:
    """Keep rows with a region, a positive integer quantity and a price.

    Args:
        rows: raw CSV rows.
    """
    orders: list[Order] = []
    dropped: list[str] = []
    for row in rows:
        oid = row.get("order_id", "?")
        try:
            quantity = int(row["quantity"])
            price = Decimal(row["unit_price"])
        except (KeyError, ValueError, InvalidOperation):
            dropped.append(f"{oid}: quantity/unit_price not a number")
            continue
        if not row.get("region"):
            dropped.append(f"{oid}: no region")
        elif quantity <= 0:
            dropped.append(f"{oid}: quantity {quantity} <= 0")
        else:
            orders.append(
                Order(
                    order_id=oid,
                    month=row["month"],
                    region=row["region"],
                    product=row["product"],
                    quantity=quantity,
                    unit_price=float(price),
                )
            )
    return Cleaned(orders=orders, dropped=dropped)


def _money(x: Decimal) -> float:
    return float(x.quantize(Decimal("0.01")))


def revenue_by_region(orders: list[Order]) -> dict[str, float]:
    """Total revenue per region, largest first.

    Args:
        orders: cleaned orders.
    """
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for o in orders:
        totals[o.region] += o.revenue
    return {r: _money(v) for r, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def top_products(orders: list[Order], n: int = 3) -> list[dict[str, float | str | int]]:
    """The ``n`` products with the most revenue.

    Args:
        orders: cleaned orders.
        n: how many products to return.
    """
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    units: dict[str, int] = defaultdict(int)
    for o in orders:
        revenue[o.product] += o.revenue
        units[o.product] += o.quantity
    ranked = sorted(revenue, key=lambda p: -revenue[p])[:n]
    return [{"product": p, "revenue": _money(revenue[p]), "units": units[p]} for p in ranked]


def monthly_trend(orders: list[Order]) -> list[dict[str, float | str]]:
    """Revenue per month and its change from the month before (percent).

    Args:
        orders: cleaned orders.
    """
    per_month: dict[str, Decimal] = defaultdict(Decimal)
    for o in orders:
        per_month[o.month] += o.revenue
    out: list[dict[str, float | str]] = []
    previous: Decimal | None = None
    for month in sorted(per_month):
        value = per_month[month]
        change = None if not previous else _money((value - previous) / previous * 100)
        out.append({"month": month, "revenue": _money(value), "change_pct": change or 0.0})
        previous = value
    return out


def write_report(
    by_region: dict[str, float],
    top: list[dict[str, float | str | int]],
    trend: list[dict[str, float | str]],
    dropped: list[str],
) -> dict[str, object]:
    """Combine the aggregates into a summary and a Markdown report.

    Args:
        by_region: revenue per region.
        top: best products.
        trend: revenue per month.
        dropped: rows rejected while cleaning.
    """
    total = round(sum(by_region.values()), 2)
    lines = [f"# Sales report — total revenue {total:,.2f}", "", "## By region"]
    lines += [f"- {r}: {v:,.2f} ({v / total:.0%})" for r, v in by_region.items()]
    lines += ["", "## Top products"]
    lines += [
        f"{i}. {t['product']}: {t['revenue']:,.2f} ({t['units']} units)"
        for i, t in enumerate(top, 1)
    ]
    lines += ["", "## Monthly trend"]
    lines += [f"- {t['month']}: {t['revenue']:,.2f} ({t['change_pct']:+.1f}%)" for t in trend]
    if dropped:
        lines += ["", f"## Dropped rows ({len(dropped)})"] + [f"- {d}" for d in dropped]
    best = next(iter(by_region), None)
    return {
        "total_revenue": total,
        "best_region": best,
        "best_product": top[0]["product"] if top else None,
        "rows_dropped": len(dropped),
        "report": "\n".join(lines),
    }

"""A sensor that tells people about new critical findings, once per batch.

A **batch** is the set of critical findings whose episode in `reports.discrepancy_history` was
opened by one build of the reports (they share `first_detected_at`, the run time of that build).
The sensor reads the warehouse read-only, sends one Slack-compatible post (`{"text": ...}`) per
new batch to `ESIM_RECON_WEBHOOK_URL` (or logs the summary when none is configured), and keeps
the `first_detected_at` of the last batch it handled as its cursor, so a batch is never sent
twice. A finding is identified by `(provider, order_no, iccid, discrepancy_type)`: when one that
was resolved comes back it opens a new episode, but it is not announced again (an earlier
episode of the same finding exists), so nobody hears twice about the same finding.

The sensor never writes the DuckDB file: while a run holds it, the evaluation is skipped and the
next one catches up.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import httpx
from pydantic import Field

from pipelines.resources import WarehouseResource

WEBHOOK_ENV = "ESIM_RECON_WEBHOOK_URL"
PREVIEW_FINDINGS = 5

# Critical episodes first detected after the cursor, of findings never seen in an earlier
# episode; grouped into batches by first_detected_at by the caller.
_NEW_CRITICAL_SQL = """
select
    history.first_detected_at,
    history.provider,
    history.order_no,
    history.iccid,
    history.discrepancy_type,
    history.local_value,
    history.provider_value,
    history.amount_at_risk,
    history.currency,
    history.money_direction
from reports.discrepancy_history as history
where history.severity = 'critical'
    and ($after is null or history.first_detected_at > $after)
    and not exists (
        select 1
        from reports.discrepancy_history as earlier
        where earlier.provider = history.provider
            and earlier.order_no = history.order_no
            -- an unknown ICCID is NULL: NULL = NULL would make every such finding new again
            and earlier.iccid is not distinct from history.iccid
            and earlier.discrepancy_type = history.discrepancy_type
            and earlier.first_detected_at < history.first_detected_at
    )
order by history.first_detected_at, history.amount_at_risk desc nulls last, history.provider,
    history.discrepancy_type, history.order_no, history.iccid
"""


@dataclass(frozen=True)
class Finding:
    provider: str
    order_no: str
    iccid: str
    discrepancy_type: str
    local_value: str | None
    provider_value: str | None
    # Money at risk as the reports decided it (absent on episodes older than the money rules).
    amount_at_risk: Decimal | None = None
    currency: str | None = None
    money_direction: str | None = None

    def money(self) -> str:
        if self.amount_at_risk is None:
            return ""
        return f" [{self.amount_at_risk:.2f} {self.currency or 'USD'}, {self.money_direction}]"


@dataclass(frozen=True)
class Batch:
    detected_at: datetime
    findings: tuple[Finding, ...]

    @property
    def cursor(self) -> str:
        return self.detected_at.isoformat()

    def money_at_risk(self) -> str:
        """`12.50 USD` (one amount per currency) over the batch's findings."""
        totals: dict[str, Decimal] = {}
        for finding in self.findings:
            if finding.amount_at_risk is not None:
                currency = finding.currency or "USD"
                totals[currency] = totals.get(currency, Decimal(0)) + finding.amount_at_risk
        if not totals:
            return "0.00 USD"
        return " + ".join(f"{amount:.2f} {currency}" for currency, amount in sorted(totals.items()))

    def summary(self) -> str:
        """A short message: counts per type and provider and the money at risk, then the first
        few findings, largest amount first."""
        by_kind = Counter((f.discrepancy_type, f.provider) for f in self.findings)
        counts = ", ".join(
            f"{count} {kind} ({provider})" for (kind, provider), count in sorted(by_kind.items())
        )
        lines = [
            f"esim-recon: {len(self.findings)} new critical finding(s) detected at "
            f"{self.detected_at.isoformat(timespec='seconds')}: {counts}; "
            f"money at risk {self.money_at_risk()}."
        ]
        for finding in self.findings[:PREVIEW_FINDINGS]:
            iccid = f" iccid {finding.iccid}" if finding.iccid else ""
            lines.append(
                f"- {finding.discrepancy_type} {finding.provider} order {finding.order_no}{iccid}: "
                f"local {finding.local_value or '-'}, provider {finding.provider_value or '-'}"
                f"{finding.money()}"
            )
        if len(self.findings) > PREVIEW_FINDINGS:
            lines.append(
                f"... and {len(self.findings) - PREVIEW_FINDINGS} more in reports.discrepancies"
            )
        return "\n".join(lines)


class WarehouseBusy(RuntimeError):
    """A run holds the DuckDB file; try again at the next evaluation."""


def new_critical_batches(db_path: Path, after: str | None) -> list[Batch]:
    """Batches of new critical findings first detected after `after` (an ISO timestamp)."""
    if not db_path.exists():
        return []
    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except duckdb.IOException as exc:
        raise WarehouseBusy(str(exc).splitlines()[0]) from None
    try:
        exists = con.execute(
            "select count(*) from duckdb_tables() "
            "where schema_name = 'reports' and table_name = 'discrepancy_history'"
        ).fetchone()
        if not exists or not exists[0]:
            return []
        rows = con.execute(
            _NEW_CRITICAL_SQL,
            {"after": datetime.fromisoformat(after) if after else None},
        ).fetchall()
    finally:
        con.close()
    batches: dict[datetime, list[Finding]] = {}
    for detected_at, *fields in rows:
        batches.setdefault(detected_at, []).append(Finding(*fields))
    return [Batch(at, tuple(items)) for at, items in sorted(batches.items())]


class WebhookResource(dg.ConfigurableResource):
    """Where notifications go: a Slack-compatible incoming webhook (ESIM_RECON_WEBHOOK_URL)."""

    url: str | None = Field(
        default=None, description="Webhook URL; unset = notifications are only logged."
    )
    timeout_seconds: float = Field(default=10.0, description="Timeout of one post.")

    def post(self, text: str) -> None:
        """POST `{"text": text}`; raises httpx.HTTPError when it was not accepted."""
        if not self.url:
            raise RuntimeError("no webhook URL configured")
        response = httpx.post(self.url, json={"text": text}, timeout=self.timeout_seconds)
        response.raise_for_status()


def webhook_from_environment() -> WebhookResource:
    """The webhook resource of a real deployment; the URL reaches Dagster as an EnvVar (the UI
    shows the variable's name, never the URL, which usually embeds a token)."""
    if os.environ.get(WEBHOOK_ENV):
        return WebhookResource(url=dg.EnvVar(WEBHOOK_ENV))
    return WebhookResource()


def _deliver(
    context: dg.SensorEvaluationContext, webhook: WebhookResource, batches: Sequence[Batch]
) -> str | None:
    """Send each batch in order; the cursor of the last one delivered (None if none was)."""
    delivered: str | None = None
    for batch in batches:
        text = batch.summary()
        if not webhook.url:
            context.log.warning(f"{WEBHOOK_ENV} is not set; new critical findings:\n{text}")
        else:
            try:
                webhook.post(text)
            except httpx.HTTPError as exc:
                # Not delivered: keep the cursor before this batch and try again next time.
                context.log.error(f"webhook post failed ({type(exc).__name__}); will retry")
                break
            context.log.info(
                f"notified {len(batch.findings)} new critical finding(s) of {batch.cursor}"
            )
        delivered = batch.cursor
    return delivered


@dg.sensor(
    name="critical_findings_webhook",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Posts one Slack-compatible message per batch of new critical findings "
        f"(reports.discrepancy_history) to {WEBHOOK_ENV}; logs them when it is not set. "
        "The cursor is the detection time of the last batch handled: never twice."
    ),
)
def critical_findings_sensor(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    webhook: WebhookResource,
) -> dg.SensorResult | dg.SkipReason:
    try:
        batches = new_critical_batches(Path(warehouse.database), context.cursor)
    except WarehouseBusy as exc:
        return dg.SkipReason(f"the warehouse is being written ({exc}); trying again later")
    if not batches:
        return dg.SkipReason("no new critical findings")
    delivered = _deliver(context, webhook, batches)
    if delivered is None:
        return dg.SkipReason("the webhook did not accept the notification; will retry")
    return dg.SensorResult(cursor=delivered)


sensors = [critical_findings_sensor]

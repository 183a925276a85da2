"""The one Dagster `Definitions` of esim-recon: it only merges what the other modules define."""

from __future__ import annotations

import dagster as dg

from assets.checks import report_checks
from assets.models import model_assets, model_checks
from assets.raw import raw_assets
from assets.reports import report_assets
from pipelines.automation import jobs, schedules
from pipelines.notifications import sensors as notification_sensors
from pipelines.notifications import webhook_from_environment
from pipelines.resources import resources_from_settings
from pipelines.settings import load_dotenv_into_environ, load_settings

load_dotenv_into_environ()

all_assets = [*raw_assets, *model_assets, *report_assets]
# What an in-process run (`esim-recon run`) executes: every asset and every check on it.
runnable = [*all_assets, *model_checks, *report_checks]

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=[*model_checks, *report_checks],
    jobs=jobs,
    schedules=schedules,
    sensors=notification_sensors,
    resources={
        **resources_from_settings(load_settings()),
        "webhook": webhook_from_environment(),
    },
)

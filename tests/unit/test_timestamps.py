"""The one event-time conversion: every form of a time gives the same UTC nanoseconds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from creditops.timestamps import utc_ns


def test_every_form_of_a_time_gives_the_same_utc_nanoseconds() -> None:
    text = pd.Series(["2026-11-30T10:00:00.123456Z", "2026-12-01T23:59:59.000001+01:00"])
    expected = pd.to_datetime(text, utc=True).astype("datetime64[ns, UTC]").astype("int64").to_numpy()
    aware = pd.to_datetime(text, utc=True)
    forms = {
        "text": text,
        "aware ns": aware.astype("datetime64[ns, UTC]"),
        "aware us": aware.astype("datetime64[us, UTC]"),
        "other zone": aware.dt.tz_convert("Europe/Berlin"),
        "naive = UTC": aware.dt.tz_localize(None),
        "naive us": aware.dt.tz_localize(None).astype("datetime64[us]"),
    }
    for name, form in forms.items():
        np.testing.assert_array_equal(utc_ns(form), expected, err_msg=name)

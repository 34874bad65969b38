"""Constants shared by the tests of labtax/use."""

SYSTEM = "You are a careful assistant."  # the system turn of train_fixtures' samples

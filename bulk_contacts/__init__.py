"""bulk-contacts: move site-contact rosters between spreadsheets and the CHeKT Partner API."""

__version__ = "0.1.0"

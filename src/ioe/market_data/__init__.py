"""External market price feeds: live fetchers and file loaders, all giving :class:`PricePoint`.

- :mod:`.nemweb`: AEMO's NEMWeb DISPATCHIS CSV (parser); :mod:`.live`: the live fetcher;
- :mod:`.csv_feed`: generic ``time,price`` files for any market;
- :mod:`.replay`: recorded prices as a paced feed, and the stopped-feed check;
- :mod:`.opennem`, :mod:`.bundled`: the real NEM days shipped with the package.

Every feed's problems are :class:`FeedError`; prices are per MWh and times are interval ends.
"""

from ioe.market_data.base import FeedError, PricePoint
from ioe.market_data.bundled import BUNDLED_REGIONS, bundled_price_rows, bundled_prices
from ioe.market_data.replay import feed_problem, replay

__all__ = [
    "BUNDLED_REGIONS",
    "FeedError",
    "PricePoint",
    "bundled_price_rows",
    "bundled_prices",
    "feed_problem",
    "replay",
]

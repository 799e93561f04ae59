"""The Demand Management app: a plug that sits out wholesale price peaks and earns credits.

:mod:`ioe.apps.demand.rule` decides each interval (pure), :mod:`ioe.apps.demand.report` adds
up what that avoided and earned (pure); the live app drives them from a price feed
(:mod:`ioe.market_data`). See ``docs/demand-app.md``.
"""

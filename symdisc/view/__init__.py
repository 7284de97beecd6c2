"""See a run: the data of a run's page (report.py), the page itself (html.py, assets/) and the
local server of `symdisc ui` (server.py). Nothing here imports torch: pages build from the store.
"""

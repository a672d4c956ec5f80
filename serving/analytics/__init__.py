"""Analysis over the store: volume and the 三率 for any slice (more to come: hotspots, topics, alerts)."""

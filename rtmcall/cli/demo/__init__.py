"""``rtmcall demo``: playing the shipped scenarios (:mod:`.run`) and its two tables
(:mod:`.view`)."""

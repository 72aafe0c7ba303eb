"""``rtmcall top``: reading the nodes' metrics (:mod:`.run`) and the dashboard's model and view
(:mod:`.view`)."""

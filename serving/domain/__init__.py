"""The domain of the 接诉即办 loop as plain functions and classes over plain data: dispatch policy,
deadlines, the ticket workflow and scoring. Nothing here touches a database or HTTP."""

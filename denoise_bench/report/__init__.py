"""Publishing: leaderboards, the HTML report and its parts, significance and the wording of conditions."""

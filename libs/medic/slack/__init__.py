"""Slack: the Web API client, pacing, mrkdwn escaping and request signing."""

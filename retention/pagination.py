"""Cursor pagination for every list endpoint: stable under inserts, O(1) per page."""

from rest_framework import pagination


class Cursor(pagination.CursorPagination):
    page_size = 100
    max_page_size = 1000
    page_size_query_param = "limit"
    ordering = "-id"

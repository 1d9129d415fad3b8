"""The monthly report's formats: tables (the one Chinese wording), charts, HTML, PDF, Excel."""

"""The API's routes, one router per concept; ``api.app.create_app`` includes them."""

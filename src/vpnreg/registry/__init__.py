"""The registry: database models, migrations and the services (one verb each) that change them."""

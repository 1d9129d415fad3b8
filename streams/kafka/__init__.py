"""The Kafka adapter: every Kafka client the project makes is built here.

``security`` renders the security settings for each client library (kafka-python, aiokafka,
faust), ``producers`` makes every producer (the worker's, the API's command publisher,
``wo publish``'s), ``admin`` the admin client and the topic set-up. Not named ``kafka`` at
the top level: that would shadow kafka-python.
"""

"""Message contracts: the generated proto classes and the JSON mapping used on the queues."""

from examples.kvstore.main import main

main()

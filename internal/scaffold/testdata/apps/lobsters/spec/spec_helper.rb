RSpec.configure { }
